//! Session-monitoring webhooks against a real receiver: signatures, order, retry after 500,
//! and the SSRF policy on callback URLs.

mod common;

use common::*;
use conclave_client::{Client, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

#[tokio::test]
async fn events_are_signed_ordered_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--allow-private-callbacks", "--allow-http-callbacks"]);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let (url, received) = receiver(1).await;
    for (group, event) in
        [("connection", "created"), ("connection", "destroyed"), ("stream", "created"), ("stream", "destroyed")]
    {
        let (status, v) = register_callback(&server.base, &p, group, event, &url).await;
        assert_eq!(status, 200);
        assert_eq!((v["group"].as_str(), v["event"].as_str()), (Some(group), Some(event)));
    }
    let (_, listed) = rest_call(&server.base, &p, reqwest::Method::GET, "callback", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 4);

    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let mut o = TokenOptions::new(Role::Publisher);
    o.data = Some("seat=3".into());
    let a = Client::connect(&ws, &s, &sdk.generate_token(&s, &o).unwrap()).await.unwrap();
    let st = a.publish(PublishOptions::default()).await.unwrap().stream_id;
    a.unpublish(&st).await.unwrap();
    let conn = a.connection_id.clone();
    a.disconnect().await.unwrap();

    // The first delivery is answered 500 and retried; all four then arrive in order.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = received.lock().unwrap().calls.iter().filter(|c| c.0 == 200).count();
        if ok >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "webhooks did not arrive: {} ok", ok);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = &received.lock().unwrap().calls;
    assert_eq!(calls[0].0, 500);
    let first: serde_json::Value = serde_json::from_slice(&calls[0].2).unwrap();
    let delivered: Vec<serde_json::Value> =
        calls.iter().filter(|c| c.0 == 200).map(|c| serde_json::from_slice(&c.2).unwrap()).collect();
    let names: Vec<&str> = delivered.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["connectionCreated", "streamCreated", "streamDestroyed", "connectionDestroyed"]);
    assert_eq!(first, delivered[0], "the retried delivery carries the same body");
    assert_eq!(delivered[0]["connection"]["id"], conn.as_str());
    assert_eq!(delivered[0]["connection"]["data"], "seat=3");
    assert_eq!(delivered[0]["sessionId"], s.as_str());
    assert_eq!(delivered[1]["stream"]["id"], st.as_str());
    assert_eq!(delivered[3]["reason"], "clientDisconnected");

    // Every request is signed: HS256 with the API secret over the SHA-256 of the body.
    for (_, auth, body) in calls {
        let jwt = auth.strip_prefix("Bearer ").expect("bearer token");
        let jws = conclave_core::jws::UnverifiedJws::split(jwt).unwrap();
        assert!(jws.signature_matches(p.api_secret.as_bytes()));
        assert!(!jws.signature_matches(b"5e8ff9bf55ba3508199d22e984129be6f0e1c3d2"));
        let claims: serde_json::Value = serde_json::from_slice(&jws.payload).unwrap();
        assert_eq!(claims["payload_hash"], hex::encode(Sha256::digest(body)));
        assert_eq!(claims["iss"], p.api_key.as_str());
    }
}

#[tokio::test]
async fn callback_urls_on_private_addresses_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    for url in
        ["https://127.0.0.1/hook", "http://hooks.example.com/x", "https://169.254.169.254/", "https://[::1]:8443/"]
    {
        let (status, v) = register_callback(&server.base, &p, "connection", "created", url).await;
        assert_eq!(status, 400, "{url}");
        assert!(v["message"].as_str().unwrap().contains("callback url"), "{v}");
    }
    let (status, _) = register_callback(&server.base, &p, "archive", "nope", "https://hooks.example.com/").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn undelivered_webhooks_survive_a_restart_and_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let flags = ["--allow-private-callbacks", "--allow-http-callbacks", "--metrics-allow", "127.0.0.1"];
    let mut server = Server::start(&data, &flags);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    // The receiver is down: nothing listens on this port yet.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    for (group, event) in [("connection", "created"), ("connection", "destroyed")] {
        assert_eq!(register_callback(&server.base, &p, group, event, &url).await.0, 200);
    }
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let a =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap()).await.unwrap();
    let conn = a.connection_id.clone();
    a.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await; // at least one failed attempt
    assert!(server.logs().contains("retrying"), "{}", server.logs());
    // The backlog shows in /metrics, with its age (for alerting on a receiver that is down).
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "conclave_webhooks_pending 2"), "{metrics}");
    let age: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("conclave_webhooks_oldest_pending_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(age >= 1, "{metrics}");
    assert!(server.stop());

    // The receiver comes up, the server restarts on the same data directory.
    let (_, received) = receiver_on(&format!("127.0.0.1:{port}"), 0).await;
    let server = Server::start(&data, &flags);
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().calls.len() < 2 {
        assert!(Instant::now() < deadline, "undelivered webhooks did not arrive after the restart:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Delivered rows leave the outbox (just after the receiver answered).
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == "conclave_webhooks_pending 0") {
            assert!(metrics.lines().any(|l| l == "conclave_webhooks_oldest_pending_seconds 0"), "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "the backlog did not drain: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = &received.lock().unwrap().calls;
    let names: Vec<String> = calls
        .iter()
        .map(|c| serde_json::from_slice::<serde_json::Value>(&c.2).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["connectionCreated", "connectionDestroyed"]);
    let first: serde_json::Value = serde_json::from_slice(&calls[0].2).unwrap();
    assert_eq!(first["connection"]["id"], conn.as_str());
    assert!(server.logs().contains("resuming undelivered webhooks"));
}
