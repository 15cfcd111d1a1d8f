//! Rate limits on REST (per source IP, per API key) and on signaling connects (per source
//! IP): 429 with `Retry-After` and a JSON message, and independent keys stay unaffected.

mod common;

use common::*;
use conclave_sdk::{Role, SessionOptions, TokenOptions};

#[tokio::test]
async fn rest_is_limited_per_source_ip_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let server = Server::start(&data, &["--rest-rate-per-ip", "5"]);
    let mut limited = None;
    for _ in 0..40 {
        let r = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a burst of 40 requests must hit a 5/s limit");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("rate limit"));
    assert!(server.logs().contains("REST rate limit exceeded"));
}

#[tokio::test]
async fn rest_is_limited_per_api_key_and_keys_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = create_project(&data);
    let b = create_project(&data);
    let server = Server::start(&data, &["--rest-rate-per-ip", "0", "--rest-rate-per-key", "2"]);
    let ca = conclave_sdk::Client::new(&a.api_key, &a.api_secret, &server.base).unwrap();
    let cb = conclave_sdk::Client::new(&b.api_key, &b.api_secret, &server.base).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(match ca.create_session(&SessionOptions::default()).await {
            Ok(_) => 200,
            Err(conclave_sdk::SdkError::Api { status, .. }) => status,
            Err(e) => panic!("{e}"),
        });
    }
    assert_eq!(&statuses[..4], [200, 200, 200, 200], "a burst of twice the rate passes");
    assert!(statuses.contains(&429), "{statuses:?}");
    cb.create_session(&SessionOptions::default()).await.expect("another project's budget is separate");
}

#[tokio::test]
async fn signaling_connects_are_limited_per_source_ip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--connect-rate-per-ip", "1"]);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let token = || sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap();
    let _a = conclave_client::Client::connect(&ws, &s, &token()).await.unwrap();
    let _b = conclave_client::Client::connect(&ws, &s, &token()).await.unwrap();
    match conclave_client::Client::connect(&ws, &s, &token()).await {
        Err(conclave_client::ClientError::Socket(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().contains_key("retry-after"));
        }
        Err(e) => panic!("expected an HTTP 429, got {e}"),
        Ok(_) => panic!("the third connect within a second must be refused"),
    }
}
