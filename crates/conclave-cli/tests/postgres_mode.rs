//! Cluster mode's database: `conclave` on PostgreSQL (`--database-url`) instead of the embedded
//! SQLite. A throwaway PostgreSQL server (tests/pg in conclave-store: initdb in a temp dir, a
//! loopback port), the real binary: a project created by the CLI, a routed session over REST,
//! clients over signaling, a REST force-disconnect whose revocation survives a restart, and an
//! archive recorded from a real-media bot until `available`, each checked in the database too.

mod common;
#[path = "../../conclave-store/tests/pg/mod.rs"]
mod pg;

use common::*;
use conclave_client::clip::EncodedClip;
use conclave_client::media::{BotConfig, publish_routed};
use conclave_client::signal::{DisconnectReason, ErrorCode, ServerMessage};
use conclave_client::{Client, ClientError, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn refused(r: Result<Client, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Refused { code, .. }) => code,
        Err(e) => panic!("expected a typed refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

/// `conclave ARGS` with `CONCLAVE_MASTER_KEY` set as given (or removed).
fn conclave_with_key(args: &[&str], master_key: Option<&str>) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args);
    match master_key {
        Some(k) => c.env("CONCLAVE_MASTER_KEY", k),
        None => c.env_remove("CONCLAVE_MASTER_KEY"),
    };
    c.env_remove("CONCLAVE_DATABASE_URL").output().expect("run conclave")
}

async fn rest(server: &Server, p: &Project, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}/v2/project/{}/{path}", server.base, p.api_key))
        .header("X-OPENTOK-AUTH", rest_jwt(p));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_keeps_projects_sessions_revocations_and_archives() {
    let pg = pg::Postgres::start();
    pg.create_database("conclave");
    // The server trusts loopback, so the password is never checked: it is in the URL to prove
    // that the URL never reaches a log (every Server's log is checked for remembered secrets).
    let password = "pg-Pa55word-that-must-not-be-logged";
    remember_secret(password);
    let url = format!("postgres://{}:{password}@127.0.0.1:{}/conclave", pg::USER, pg.port());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // A project created by the CLI lands in PostgreSQL, not in a SQLite file.
    let out = conclave(&["project", "create", "--json", "--data-dir", data_s, "--database-url", &url]);
    assert!(out.status.success(), "project create: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = Project {
        api_key: v["api_key"].as_str().unwrap().into(),
        api_secret: v["api_secret"].as_str().unwrap().into(),
    };
    remember_secret(&p.api_secret);
    assert!(!data.join("conclave.db").exists(), "no embedded database with --database-url");
    assert_eq!(
        pg.psql("conclave", &format!("SELECT name FROM projects WHERE api_key = '{}'", p.api_key)).trim(),
        "default"
    );
    assert!(
        !pg.psql("conclave", "SELECT encode(secret_sealed, 'escape') FROM projects").contains(&p.api_secret),
        "the secret is sealed in the database"
    );

    // Another node: the same database with its own data directory works only with the same
    // master key (CONCLAVE_MASTER_KEY), and a different key is refused, not misread.
    let other = dir.path().join("node2");
    let other_s = other.to_str().unwrap();
    let refused_key = conclave_with_key(&["project", "list", "--data-dir", other_s, "--database-url", &url], None);
    assert!(!refused_key.status.success());
    let err = String::from_utf8_lossy(&refused_key.stderr);
    assert!(err.contains("master key"), "{err}");
    assert!(!err.contains(password), "the database URL's password is not echoed: {err}");
    let shared_key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let listed = conclave_with_key(
        &["project", "list", "--json", "--data-dir", other_s, "--database-url", &url],
        Some(shared_key.trim()),
    );
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["api_key"], p.api_key.as_str());
    // Anything but a PostgreSQL URL is refused with the fix.
    let bad = conclave(&["project", "list", "--data-dir", data_s, "--database-url", "mysql://x@127.0.0.1/db"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("postgres://"));

    let serve_args = ["--database-url", url.as_str(), "--rtc-host", "127.0.0.1", "--rtc-port", "0"];
    let mut server = Server::start(&data, &serve_args);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));

    // A routed session over REST, stored in PostgreSQL.
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    assert_eq!(
        pg.psql("conclave", &format!("SELECT media_mode || ' ' || api_key FROM sessions WHERE session_id = '{s}'"))
            .trim(),
        format!("routed {}", p.api_key)
    );

    // Clients join over signaling and see each other.
    let mut moderator =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Moderator)).unwrap()).await.unwrap();
    let kick_token = sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap();
    let mut victim = Client::connect(&ws, &s, &kick_token).await.unwrap();
    assert_eq!(victim.initial_connections().len(), 1, "the joiner sees the moderator");
    let created = moderator.wait_for(|m| matches!(m, ServerMessage::ConnectionCreated { .. }), T).await.unwrap();
    assert!(
        matches!(created, ServerMessage::ConnectionCreated { connection } if connection.connection_id == victim.connection_id)
    );

    // A REST force-disconnect revokes the token, in the database.
    let (status, _) =
        rest(&server, &p, reqwest::Method::DELETE, &format!("session/{s}/connection/{}", victim.connection_id), None)
            .await;
    assert_eq!(status, 204);
    assert_eq!(victim.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    assert_eq!(refused(Client::connect(&ws, &s, &kick_token).await), ErrorCode::TokenRevoked);
    assert_eq!(
        pg.psql("conclave", &format!("SELECT count(*) FROM revoked_tokens WHERE session_id = '{s}'")).trim(),
        "1"
    );

    // An archive of a real-media publisher, recorded, packaged and kept until `available`.
    let clip_dir = dir.path().join("clip");
    std::fs::create_dir_all(&clip_dir).unwrap();
    let clip = Arc::new(EncodedClip::generate(&clip_dir, 4, 15).unwrap());
    let mut publisher =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap()).await.unwrap();
    let stream = publisher.publish(PublishOptions::default()).await.unwrap();
    let bot = publish_routed(
        &mut publisher,
        &stream.stream_id,
        BotConfig { clip: Some(clip), keep_frames: false, ..BotConfig::default() },
    )
    .await
    .unwrap();
    bot.wait_connected(T).await.unwrap();
    let (requests_before, video_before) = bot.with_stats(|st| (st.keyframe_requests.len(), st.video_sent));
    let (status, started) = rest(
        &server,
        &p,
        reqwest::Method::POST,
        "archive",
        Some(json!({"sessionId": s, "outputMode": "individual", "name": "pg"})),
    )
    .await;
    assert_eq!(status, 200, "start: {started}");
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(pg.psql("conclave", &format!("SELECT status FROM archives WHERE id = '{id}'")).trim(), "started");
    // Stop once the recorder asked for a keyframe and a second of video followed it.
    let end = Instant::now() + Duration::from_secs(30);
    while !bot.with_stats(|st| st.keyframe_requests.len() > requests_before && st.video_sent >= video_before + 30) {
        assert!(Instant::now() < end, "the recorder never asked the publisher for a keyframe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, stopped) = rest(&server, &p, reqwest::Method::POST, &format!("archive/{id}/stop"), None).await;
    assert_eq!(status, 200, "stop: {stopped}");
    drop(bot);
    let end = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let (status, v) = rest(&server, &p, reqwest::Method::GET, &format!("archive/{id}"), None).await;
        assert_eq!(status, 200, "get: {v}");
        if !matches!(v["status"].as_str(), Some("started" | "paused" | "stopped")) {
            break v;
        }
        assert!(Instant::now() < end, "archive still {}", v["status"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done["status"], "available", "{done}");
    assert!(done["size"].as_u64().unwrap() > 0);
    assert_eq!(pg.psql("conclave", &format!("SELECT status FROM archives WHERE id = '{id}'")).trim(), "available");

    // After a restart on the same database the revocation holds and the archive is still there.
    drop(publisher);
    assert!(server.stop(), "clean shutdown");
    let server = Server::start(&data, &serve_args);
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    assert_eq!(refused(Client::connect(&ws, &s, &kick_token).await), ErrorCode::TokenRevoked);
    Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap()).await.unwrap();
    let (status, v) = rest(&server, &p, reqwest::Method::GET, &format!("archive?sessionId={s}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["count"].as_u64(), v["items"][0]["id"].as_str(), v["items"][0]["status"].as_str()),
        (Some(1), Some(id.as_str()), Some("available")),
        "{v}"
    );
    // The audit log of the kick is in PostgreSQL too.
    let audited = pg.psql("conclave", "SELECT action FROM audit_log ORDER BY seq");
    assert!(audited.lines().any(|a| a == "connection.force_disconnect"), "audit log: {audited}");
}
