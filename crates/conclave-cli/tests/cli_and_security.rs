//! The CLI and the secure-by-default promises of the foundation: secrets sealed at rest,
//! never logged, rotation with a grace period, weak configuration refused, TLS policy,
//! graceful shutdown, and the token verifier that signaling uses.

mod common;

use common::*;
use conclave_sdk::{Client, Role, SessionOptions, TokenFormat, TokenOptions};
use std::os::unix::fs::PermissionsExt;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn projects_are_created_and_rotated_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = create_project(&data);
    let mut server = Server::start(&data, &[]);
    let d = data.to_str().unwrap();

    // Created while the server holds the database open, and usable at once.
    let p = create_project(&data);
    assert_eq!(p.api_key.len(), 8);
    assert!(p.api_secret.len() == 40 && p.api_secret.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let old = Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let session = old.create_session(&SessionOptions::routed()).await.unwrap();

    let listed = conclave(&["project", "list", "--json", "--data-dir", d]);
    let listed = stdout(&listed);
    assert!(listed.contains(&p.api_key) && listed.contains(&first.api_key));
    assert!(!listed.contains(&p.api_secret), "list must never show secrets");

    // Rotation with a grace period: both secrets work.
    let out =
        conclave(&["project", "rotate-secret", "--json", "--api-key", &p.api_key, "--grace", "1h", "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let new_secret = v["api_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, p.api_secret);
    let new = Client::new(&p.api_key, &new_secret, &server.base).unwrap();
    old.create_session(&SessionOptions::default()).await.expect("old secret works during the grace period");
    new.create_session(&SessionOptions::default()).await.expect("new secret works");
    // Tokens minted with the old secret still verify during the grace period.
    let t = old.generate_token(&session.session_id, &TokenOptions::new(Role::Publisher)).unwrap();
    assert!(
        conclave(&["token", "verify", "--data-dir", d, "--session-id", &session.session_id, "--token", &t])
            .status
            .success()
    );

    // Rotation with no grace: the previous secret stops at once.
    let out =
        conclave(&["project", "rotate-secret", "--json", "--api-key", &p.api_key, "--grace", "0s", "--data-dir", d]);
    let newest =
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()["api_secret"].as_str().unwrap().to_owned();
    match new.create_session(&SessionOptions::default()).await {
        Err(conclave_sdk::SdkError::Api { status: 403, .. }) => {}
        other => panic!("expected 403 for the rotated-out secret, got {other:?}"),
    }
    Client::new(&p.api_key, &newest, &server.base).unwrap().create_session(&SessionOptions::default()).await.unwrap();

    assert!(server.stop(), "graceful shutdown on SIGTERM exits 0");
    let logs = server.logs();
    assert!(logs.contains("SIGTERM received") && logs.contains("stopped"));
    for secret in [&first.api_secret, &p.api_secret, &new_secret, &newest] {
        assert!(!logs.contains(secret.as_str()), "a secret appeared in the server log");
    }
}

#[tokio::test]
async fn tokens_minted_by_the_cli_verify_for_their_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let d = data.to_str().unwrap();
    let client = Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let a = client.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let b = client.create_session(&SessionOptions::routed()).await.unwrap().session_id;

    for format in ["jwt", "t1"] {
        let out = conclave(&[
            "token",
            "--data-dir",
            d,
            "--session-id",
            &a,
            "--role",
            "subscriber",
            "--data",
            "seat=4 & row=B",
            "--layout-class",
            "focus",
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let token = stdout(&out);
        assert_eq!(token.starts_with("T1=="), format == "t1");
        let ok = conclave(&["token", "verify", "--data-dir", d, "--session-id", &a, "--token", &token]);
        assert!(ok.status.success(), "{}", stdout(&ok));
        let claims: serde_json::Value = serde_json::from_str(&stdout(&ok)).unwrap();
        assert_eq!(claims["role"], "subscriber");
        assert_eq!(claims["format"], format);
        assert_eq!(claims["connection_data"], "seat=4 & row=B");
        assert_eq!(claims["initial_layout_classes"], serde_json::json!(["focus"]));
        assert_eq!(claims["api_key"], p.api_key.as_str());

        let wrong = conclave(&["token", "verify", "--data-dir", d, "--session-id", &b, "--token", &token]);
        assert_eq!(wrong.status.code(), Some(1));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&wrong)).unwrap()["code"], "token_wrong_session");
    }

    // A token signed by a project the store does not know, and a REST credential.
    let foreign = Client::new(&p.api_key, "5e8ff9bf55ba3508199d22e984129be6f0e1c3d2", &server.base).unwrap();
    let forged = foreign
        .generate_token(&a, &TokenOptions { format: TokenFormat::T1, ..TokenOptions::new(Role::Moderator) })
        .unwrap();
    let out = conclave(&["token", "verify", "--data-dir", d, "--session-id", &a, "--token", &forged]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()["code"], "token_bad_signature");
    let out = conclave(&["token", "verify", "--data-dir", d, "--session-id", &a, "--token", &client.rest_credential()]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()["code"], "token_wrong_scope");

    // Neither secrets nor whole tokens in the logs.
    assert!(!server.logs().contains(&p.api_secret));
    assert!(!server.logs().contains(&forged));
}

#[test]
fn secrets_are_encrypted_at_rest_and_need_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(40).any(|w| w == p.api_secret.as_bytes()), "plaintext secret in {}", path.display());
    }
    let master = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(master, 0o600);
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    // A copied database without its master key reveals nothing and opens nothing.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["conclave.db", "conclave.db-wal", "conclave.db-shm"] {
        if data.join(f).exists() {
            std::fs::copy(data.join(f), copy.join(f)).unwrap();
        }
    }
    let out = conclave(&["project", "list", "--data-dir", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("master key does not open"), "{}", stderr(&out));

    // A world-readable master key file is refused with the fix in the message.
    std::fs::set_permissions(data.join("master.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = conclave(&["project", "list", "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn weak_imported_secrets_and_weak_master_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "project",
            "create",
            "--data-dir",
            d,
            "--import-api-key",
            "47000001",
            "--import-secret-env",
            "OLD_SECRET",
        ])
        .env("OLD_SECRET", "0123456789abcdef0123456789abcdef01234567")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("too weak"), "{}", stderr(&out));
    let out = std::process::Command::new(BIN)
        .args([
            "project",
            "create",
            "--json",
            "--data-dir",
            d,
            "--import-api-key",
            "47000001",
            "--import-secret-env",
            "OLD_SECRET",
        ])
        .env("OLD_SECRET", "a9f3c07b1e4d2a6c8b0f9e3d7c1a5b2e4f6d8c0a")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("47000001"));

    let out = std::process::Command::new(BIN)
        .args(["project", "list", "--data-dir", dir.path().join("other").to_str().unwrap()])
        .env("CONCLAVE_MASTER_KEY", "00".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("weak key"), "{}", stderr(&out));
}

#[test]
fn plain_http_is_refused_off_loopback_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let out = conclave(&["serve", "--data-dir", d.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("refusing to serve the REST API over plain HTTP") && err.contains("--tls-cert"), "{err}");
    assert!(!d.exists(), "refused before touching the data directory");
}

#[tokio::test]
async fn self_signed_tls_serves_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let mut server = Server::start_scheme(&data, &["--tls-self-signed"], "https");
    let http = reqwest::Client::builder().tls_danger_accept_invalid_certs(true).build().unwrap();
    let client = Client::with_http_client(&p.api_key, &p.api_secret, &server.base, http);
    client.create_session(&SessionOptions::routed()).await.expect("HTTPS works");
    let key_mode = std::fs::metadata(data.join("tls/self-signed.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    // The same port does not answer plain HTTP.
    let plain = server.base.replace("https://", "http://");
    let r = reqwest::get(format!("{plain}/healthz")).await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    assert!(server.stop());
}
