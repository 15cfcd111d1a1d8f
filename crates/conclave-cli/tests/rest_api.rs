//! The REST core against a real `conclave serve`: exact wire formats, authentication rules,
//! and bad input that must end in a 4xx JSON error with the store intact.

mod common;

use common::*;
use conclave_sdk::{Client, MediaMode, SessionOptions};
use reqwest::StatusCode;

async fn post_form(
    base: &str,
    auth: Option<&str>,
    accept: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/session/create"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(a) = auth {
        req = req.header("X-OPENTOK-AUTH", a);
    }
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    req.send().await.unwrap()
}

async fn json_error(resp: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["code"].is_i64(), "{v}");
    let msg = v["message"].as_str().expect("message string").to_owned();
    assert!(!msg.is_empty());
    msg
}

#[tokio::test]
async fn session_create_speaks_json_and_xml_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);

    let resp = post_form(
        &server.base,
        Some(&rest_jwt(&p)),
        Some("application/json"),
        "archiveMode=manual&p2p.preference=disabled&e2ee=true",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json", "no charset: Python >= 3.11 compares it exactly");
    let v: serde_json::Value = resp.json().await.unwrap();
    let sid = v[0]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(v[0]["project_id"], p.api_key.as_str());
    assert_eq!(v[0]["partner_id"], p.api_key.as_str());
    let id = conclave_core::SessionId::parse(&sid).unwrap();
    assert_eq!(id.api_key_hint().as_deref(), Some(p.api_key.as_str()));
    assert_eq!(id.decoded_fields().unwrap()[4].len(), 32, "192 random bits");

    let resp = post_form(
        &server.base,
        Some(&rest_jwt(&p)),
        Some("*/*"),
        "p2p.preference=enabled&archiveMode=manual&e2ee=false",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().contains("xml"));
    let xml = resp.text().await.unwrap();
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sessions><Session><session_id>1_"#),
        "{xml}"
    );
    assert!(xml.contains(&format!("<partner_id>{}</partner_id>", p.api_key)));

    // A base URL with a trailing slash makes the SDKs request //session/create.
    let resp = reqwest::Client::new()
        .post(format!("{}//session/create", server.base))
        .header("X-OPENTOK-AUTH", rest_jwt(&p))
        .header("Accept", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The settings were stored as requested, readable with the SDK.
    let client = Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let info = client.get_session(&sid).await.unwrap();
    assert_eq!((info.media_mode, info.e2ee), (MediaMode::Routed, true));
    let openapi: serde_json::Value =
        reqwest::get(format!("{}/openapi.json", server.base)).await.unwrap().json().await.unwrap();
    // Every route the server answers is described.
    let s = "/v2/project/{apiKey}/session/{sessionId}";
    for (method, path) in [
        ("post", "/session/create".to_owned()),
        ("get", s.to_owned()),
        ("delete", s.to_owned()),
        ("get", format!("{s}/connection")),
        ("delete", format!("{s}/connection/{{connectionId}}")),
        ("post", format!("{s}/connection/{{connectionId}}/signal")),
        ("post", format!("{s}/signal")),
        ("post", format!("{s}/mute")),
        ("get", format!("{s}/stream")),
        ("put", format!("{s}/stream")),
        ("get", format!("{s}/stream/{{streamId}}")),
        ("post", format!("{s}/stream/{{streamId}}/mute")),
        ("get", "/v2/project/{apiKey}/callback".to_owned()),
        ("post", "/v2/project/{apiKey}/callback".to_owned()),
        ("delete", "/v2/project/{apiKey}/callback/{callbackId}".to_owned()),
        ("get", "/v1/signal".to_owned()),
        ("get", "/healthz".to_owned()),
    ] {
        assert!(openapi["paths"][&path][method].is_object(), "{method} {path} missing from /openapi.json");
    }
}

#[tokio::test]
async fn credentials_are_checked_by_the_compat_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let other = create_project(&data);
    let server = Server::start(&data, &[]);
    let base = &server.base;
    let now = now();

    let msg = json_error(post_form(base, None, Some("application/json"), "").await, StatusCode::FORBIDDEN).await;
    assert!(msg.contains("missing"), "{msg}");
    let wrong_secret =
        conclave_core::rest_auth::mint(&p.api_key, b"5e8ff9bf55ba3508199d22e984129be6f0e1c3d2", now, 300);
    json_error(post_form(base, Some(&wrong_secret), None, "").await, StatusCode::FORBIDDEN).await;
    let expired = conclave_core::rest_auth::mint(&p.api_key, p.api_secret.as_bytes(), now - 1000, 300);
    let msg = json_error(post_form(base, Some(&expired), None, "").await, StatusCode::FORBIDDEN).await;
    assert!(msg.contains("expired"), "{msg}");

    // Participant tokens, even short-lived ones signed with the right secret, are refused.
    let client = Client::new(&p.api_key, &p.api_secret, base).unwrap();
    let session = client.create_session(&SessionOptions::routed()).await.unwrap();
    for format in [conclave_sdk::TokenFormat::Jwt, conclave_sdk::TokenFormat::T1] {
        let mut o = conclave_sdk::TokenOptions::new(conclave_sdk::Role::Moderator);
        o.format = format;
        o.expire_time = Some(now + 120);
        let token = client.generate_token(&session.session_id, &o).unwrap();
        let msg = json_error(post_form(base, Some(&token), None, "").await, StatusCode::FORBIDDEN).await;
        assert!(msg.contains("client tokens cannot be used"), "{msg}");
    }

    // A credential of project B on project A's path, and A's session read by B: 403 / 404.
    let b = Client::new(&other.api_key, &other.api_secret, base).unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{base}/v2/project/{}/session/{}", p.api_key, session.session_id))
        .header("X-OPENTOK-AUTH", b.rest_credential())
        .send()
        .await
        .unwrap();
    json_error(resp, StatusCode::FORBIDDEN).await;
    match b.get_session(&session.session_id).await {
        Err(conclave_sdk::SdkError::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    // ...and an unknown session looks exactly the same.
    match b.get_session("1_MX4xMjM0NTZ-fjE3MDAwMDAwMDAwMDB-YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4flB-fg").await {
        Err(conclave_sdk::SdkError::Api { status: 404, message }) => assert_eq!(message, "session not found"),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_and_the_store_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let base = &server.base;
    let client = Client::new(&p.api_key, &p.api_secret, base).unwrap();
    let before = client.create_session(&SessionOptions::routed()).await.unwrap();

    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("unknown p2p.preference", b"p2p.preference=sometimes".to_vec(), StatusCode::BAD_REQUEST),
        ("always with relayed", b"archiveMode=always&p2p.preference=enabled".to_vec(), StatusCode::BAD_REQUEST),
        ("e2ee on relayed", b"p2p.preference=enabled&e2ee=true".to_vec(), StatusCode::BAD_REQUEST),
        ("malformed boolean", b"p2p.preference=disabled&e2ee=perhaps".to_vec(), StatusCode::BAD_REQUEST),
        ("malformed form", b"%%%&&&===&p2p.preference=%ZZ".to_vec(), StatusCode::BAD_REQUEST),
        ("non-UTF-8 bytes", vec![b'p', b'=', 0xff, 0xfe, 0xc3], StatusCode::BAD_REQUEST),
        ("bad location", b"location=300.1.2.3".to_vec(), StatusCode::BAD_REQUEST),
        (
            "maxParticipants out of range",
            b"p2p.preference=disabled&maxParticipants=0".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("oversized body", vec![b'a'; 200 * 1024], StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (what, body, status) in cases {
        let resp = post_form(base, Some(&rest_jwt(&p)), Some("application/json"), body).await;
        let msg = json_error(resp, status).await;
        println!("{what}: {status} {msg}");
    }
    // Hostile path segments and methods.
    for path in [
        format!("/v2/project/{}/session/..%2F..%2Fetc%2Fpasswd", p.api_key),
        format!("/v2/project/{}/session/{}", p.api_key, "x".repeat(300)),
        "/v2/nothing".to_owned(),
    ] {
        let resp = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("X-OPENTOK-AUTH", rest_jwt(&p))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
        json_error(resp, resp_status(&path)).await;
    }
    let resp = reqwest::Client::new().delete(format!("{base}/session/create")).send().await.unwrap();
    json_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;

    // Nothing stored was lost, and the server still works.
    assert_eq!(client.get_session(&before.session_id).await.unwrap().session_id, before.session_id);
    client.create_session(&SessionOptions::default()).await.unwrap();
    assert!(!server.logs().contains("request failed"), "a 5xx happened:\n{}", server.logs());
}

fn resp_status(_path: &str) -> StatusCode {
    StatusCode::NOT_FOUND
}
