//! Operations endpoints and start-up refusals: /readyz, /metrics behind an allow-list
//! (denied until configured), and weak configurations refused with the fix in the message.

mod common;

use common::*;
use conclave_sdk::{Role, SessionOptions, TokenOptions};

#[tokio::test]
async fn metrics_are_denied_until_an_allow_list_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let closed = Server::start(&data, &[]);
    let r = reqwest::get(format!("{}/metrics", closed.base)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.json::<serde_json::Value>().await.unwrap()["message"].as_str().unwrap().contains("--metrics-allow"));
    let ready = reqwest::get(format!("{}/readyz", closed.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn allow_listed_addresses_read_live_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--metrics-allow", "127.0.0.1"]);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let c = conclave_client::Client::connect(
        &ws,
        &s,
        &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap(),
    )
    .await
    .unwrap();
    c.publish(conclave_client::PublishOptions::default()).await.unwrap();
    let _ = conclave_client::Client::connect(&ws, &s, "T1==forged").await;
    let _ = reqwest::Client::new()
        .post(format!("{}/session/create", server.base))
        .header("X-OPENTOK-AUTH", "bad")
        .send()
        .await
        .unwrap();
    let r = reqwest::get(format!("{}/metrics", server.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    // Media counters exist (the SFU socket is up; nothing flowed in this test).
    assert!(text.contains("# TYPE conclave_media_packets_sent_total counter"));
    for line in [
        "conclave_joins_total 1",
        "conclave_joins_refused_total 1",
        "conclave_rest_auth_failures_total 1",
        "conclave_connections 1",
        "conclave_streams 1",
        "conclave_sessions_live 1",
        // Nothing shed on an idle node.
        "conclave_media_shed_backlog_packets_total 0",
        "conclave_media_shed_overload_packets_total 0",
        "conclave_media_legs_shedding 0",
        "conclave_media_workers_overloaded 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn weak_configurations_are_refused_at_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let out = conclave(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0", "--metrics-allow", "0.0.0.0/0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("would open /metrics to every address"));
    let out = conclave(&["serve", "--data-dir", d, "--listen", "0.0.0.0:0", "--tls-self-signed"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("self-signed certificate on a non-loopback address") && err.contains("--tls-cert"), "{err}");
}
