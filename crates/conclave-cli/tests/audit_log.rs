//! The audit log: administrative actions from the CLI, REST and moderators are recorded
//! with who, where and when; the table refuses changes; no secret or token is in it.

mod common;

use common::*;
use conclave_client::{Client, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenOptions};

#[tokio::test]
async fn administrative_actions_are_recorded_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let moderator_token = sdk.generate_token(&s, &TokenOptions::new(Role::Moderator)).unwrap();
    let m = Client::connect(&ws, &s, &moderator_token).await.unwrap();
    let mut v =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap()).await.unwrap();
    let st = v.publish(PublishOptions::default()).await.unwrap().stream_id;
    m.force_mute(&st).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("{}/v2/project/{}/session/{s}/connection/{}", server.base, p.api_key, v.connection_id))
        .header("X-OPENTOK-AUTH", sdk.rest_credential())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    v.wait_disconnected(std::time::Duration::from_secs(5)).await.unwrap();
    let rotated = conclave(&["project", "rotate-secret", "--json", "--data-dir", &d, "--api-key", &p.api_key]);
    assert!(rotated.status.success());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let out = conclave(&["audit", "--json", "--data-dir", &d, "--api-key", &p.api_key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["project.rotate_secret", "connection.force_disconnect", "stream.force_mute", "project.create"],
        "newest first"
    );
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("cli:"));
    assert_eq!(entries[1]["actor"], format!("key:{}", p.api_key));
    assert_eq!(entries[1]["source"], "127.0.0.1");
    assert_eq!(entries[1]["target"], format!("{s}/{}", v.connection_id));
    assert_eq!(entries[2]["actor"], format!("moderator:{}", m.connection_id));
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!all.contains(&p.api_secret) && !all.contains(&moderator_token));
    assert!(server.logs().contains("connection.force_disconnect"), "an audit log line is emitted too");
}

#[test]
fn the_audit_table_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let db = data.join("conclave.db");
    for sql in ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"] {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
                db.to_str().unwrap(),
                sql,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{sql} must fail");
        assert!(String::from_utf8_lossy(&out.stderr).contains("append-only"));
    }
}
