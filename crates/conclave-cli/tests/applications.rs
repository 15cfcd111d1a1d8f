//! Vonage Video applications against a real `conclave serve`: RS256 REST credentials in
//! `Authorization: Bearer`, RS256 client tokens joining over protocol v1 and at the OpenTok.js
//! adapter's anvil, and every forgery refused: algorithm confusion, `none`, another
//! application's key, a key rotated out, tampered claims, expired or over-long credentials,
//! a project's HS256 credential on an application's paths and the reverse, and client tokens
//! and REST credentials used as each other.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use conclave_client::Client;
use conclave_core::Role;
use conclave_server::application::{ClientTokenParams, Signer};
use serde_json::{Value, json};
use std::path::Path;

struct App {
    id: String,
    signer: Signer,
    private_pem: String,
    webhook_secret: String,
}

/// `conclave application create --json`, with a generated pair or a given public key.
fn create_app(data: &Path, public_key_file: Option<&Path>, private_pem: Option<&str>) -> App {
    let mut args = vec!["application", "create", "--json", "--name", "t", "--data-dir", data.to_str().unwrap()];
    if let Some(f) = public_key_file {
        args.extend(["--public-key-file", f.to_str().unwrap()]);
    }
    let out = conclave(&args);
    assert!(out.status.success(), "application create: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let id = v["application_id"].as_str().unwrap().to_owned();
    let private_pem = match private_pem {
        Some(p) => {
            assert!(v.get("private_key").is_none(), "no private key when the public key was given");
            p.to_owned()
        }
        None => v["private_key"].as_str().expect("a generated private key").to_owned(),
    };
    remember_secret(private_pem.lines().nth(2).unwrap());
    let webhook_secret = v["webhook_secret"].as_str().unwrap().to_owned();
    remember_secret(&webhook_secret);
    App { id, signer: Signer::from_pem(&private_pem).unwrap(), private_pem, webhook_secret }
}

fn rest_cred(app: &App) -> String {
    app.signer.rest_credential(&app.id, now(), 900)
}

fn client_token(signer: &Signer, app_id: &str, session_id: &str, role: Role) -> String {
    let now = now();
    let p = ClientTokenParams {
        session_id,
        role,
        issued_at: now,
        expires_at: now + 3600,
        connection_data: Some("user=1"),
        initial_layout_classes: &["full".to_owned()],
    };
    signer.client_token(app_id, &p)
}

/// `METHOD base/path` with `Authorization: Bearer cred` (or `X-OPENTOK-AUTH` when `opentok`).
async fn call(base: &str, method: reqwest::Method, path: &str, cred: &str, opentok: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method.clone(), format!("{base}{path}"));
    req = if opentok {
        req.header("X-OPENTOK-AUTH", cred)
    } else {
        req.header("Authorization", format!("Bearer {cred}"))
    };
    if path == "/session/create" {
        req = req.header("Accept", "application/json").form(&[("p2p.preference", "disabled")]);
    } else if method == reqwest::Method::POST {
        req = req.json(&json!({"type": "t", "data": "d"}));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn create_session(base: &str, cred: &str, opentok: bool) -> String {
    let (status, v) = call(base, reqwest::Method::POST, "/session/create", cred, opentok).await;
    assert_eq!(status, 200, "{v}");
    v[0]["session_id"].as_str().unwrap().to_owned()
}

/// An RS256-looking JWT: `header.claims` signed by `signer`.
fn jws(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn rs256_with(signer: &Signer, claims: &Value) -> String {
    signer.sign(claims)
}

fn public_pem(app: &App) -> String {
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(app.signer.public_key_der()))
}

#[tokio::test]
async fn rest_bearer_credentials_and_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = create_project(&data);
    let a = create_app(&data, None, None);
    // Application B registers a public key made elsewhere (here: by another generated pair).
    let (b_private, b_public) = conclave_server::application::generate_key_pair().unwrap();
    let b_pub_file = dir.path().join("b.pub");
    std::fs::write(&b_pub_file, conclave_server::application::public_key_pem(&b_public)).unwrap();
    let b = create_app(&data, Some(&b_pub_file), Some(&b_private));
    let mut server = Server::start(&data, &[]);
    let base = server.base.clone();
    let get = reqwest::Method::GET;

    // The genuine credential works on the application's paths.
    let session = create_session(&base, &rest_cred(&a), false).await;
    let streams = format!("/v2/project/{}/session/{session}/stream", a.id);
    let (status, v) = call(&base, get.clone(), &streams, &rest_cred(&a), false).await;
    assert_eq!((status, v["count"].as_u64()), (200, Some(0)), "{v}");

    let now = now();
    let claims = json!({"application_id": a.id, "iat": now, "exp": now + 300, "jti": "j"});
    let refused = |label: &'static str| {
        move |(status, v): (u16, Value)| {
            assert_eq!(status, 403, "{label}: {v}");
            assert!(v["message"].is_string(), "{label}: JSON message");
        }
    };
    // Another application's valid credential on A's paths.
    refused("other application")(call(&base, get.clone(), &streams, &rest_cred(&b), false).await);
    // B's key claiming to be A.
    refused("other key")(call(&base, get.clone(), &streams, &rs256_with(&b.signer, &claims), false).await);
    // Algorithm confusion: HS256 with A's public key (PEM and DER) as the secret.
    for secret in [public_pem(&a).into_bytes(), a.signer.public_key_der()] {
        let hs = jws(&json!({"alg": "HS256", "typ": "JWT"}), &claims, |m| {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
            mac.update(m);
            mac.finalize().into_bytes().to_vec()
        });
        refused("HS256 with the public key")(call(&base, get.clone(), &streams, &hs, false).await);
        let mut ot = claims.clone();
        ot["iss"] = a.id.clone().into();
        ot["ist"] = "project".into();
        let hs = conclave_core::jws::sign_hs256(&ot, &secret);
        refused("HS256 in X-OPENTOK-AUTH")(call(&base, get.clone(), &streams, &hs, true).await);
    }
    // alg none, and a tampered payload under a genuine signature.
    let none =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    refused("alg none")(call(&base, get.clone(), &streams, &none, false).await);
    let genuine = rs256_with(&a.signer, &claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut tampered = claims.clone();
    tampered["exp"] = (now + 200).into();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(tampered.to_string()), parts[2]);
    refused("tampered")(call(&base, get.clone(), &streams, &tampered, false).await);
    // Times: expired, issued in the future, longer than 900 s; unknown application.
    for (iat, exp) in [(now - 2000, now - 1000), (now + 3600, now + 3700), (now, now + 3600)] {
        let c = json!({"application_id": a.id, "iat": iat, "exp": exp, "jti": "j"});
        refused("times")(call(&base, get.clone(), &streams, &rs256_with(&a.signer, &c), false).await);
    }
    let unknown = json!({"application_id": "00000000-0000-4000-8000-000000000000", "iat": now, "exp": now + 60});
    refused("unknown application")(
        call(&base, reqwest::Method::POST, "/session/create", &rs256_with(&a.signer, &unknown), false).await,
    );
    // A project's HS256 credential on the application's paths (either header), and the reverse.
    let hs = rest_jwt(&project);
    refused("project credential as Bearer")(call(&base, get.clone(), &streams, &hs, false).await);
    refused("project credential on the application's path")(call(&base, get.clone(), &streams, &hs, true).await);
    let project_session = create_session(&base, &hs, true).await;
    let project_streams = format!("/v2/project/{}/session/{project_session}/stream", project.api_key);
    assert_eq!(call(&base, get.clone(), &project_streams, &hs, true).await.0, 200);
    refused("application credential on a project's path")(
        call(&base, get.clone(), &project_streams, &rest_cred(&a), false).await,
    );
    refused("application credential in X-OPENTOK-AUTH")(call(&base, get.clone(), &streams, &rest_cred(&a), true).await);
    // Both headers at once are refused, even when each would verify.
    let r = reqwest::Client::new()
        .get(format!("{base}{streams}"))
        .header("Authorization", format!("Bearer {}", rest_cred(&a)))
        .header("X-OPENTOK-AUTH", rest_jwt(&project))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not both"));
    // A client token is not a REST credential.
    let (status, v) =
        call(&base, get.clone(), &streams, &client_token(&a.signer, &a.id, &session, Role::Moderator), false).await;
    assert_eq!(status, 403);
    assert!(v["message"].as_str().unwrap().contains("client tokens"), "{v}");

    // What Conclave does not serve: an authenticated 501 with a message.
    for path in ["dial", "captions", "render"] {
        let (status, v) =
            call(&base, reqwest::Method::POST, &format!("/v2/project/{}/{path}", a.id), &rest_cred(&a), false).await;
        assert_eq!(status, 501, "{path}: {v}");
        assert!(v["message"].as_str().unwrap().contains("does not serve"), "{v}");
    }
    refused("501 routes authenticate first")(
        call(&base, reqwest::Method::POST, &format!("/v2/project/{}/dial", a.id), &hs, false).await,
    );
    refused("broadcasts need an application credential")(
        call(&base, reqwest::Method::POST, &format!("/v2/project/{}/broadcast", a.id), &hs, false).await,
    );
    assert!(server.stop());
    let logs = server.logs();
    assert!(!logs.contains(&genuine), "no credential in the logs");
}

#[tokio::test]
async fn rotated_keys_verify_only_during_their_grace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = create_app(&data, None, None);
    let server = Server::start(&data, &[]);
    let base = server.base.clone();
    let rotate = |grace: &str| {
        let out = conclave(&[
            "application",
            "rotate-key",
            "--json",
            "--application-id",
            &a.id,
            "--grace",
            grace,
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let pem = v["private_key"].as_str().unwrap().to_owned();
        remember_secret(pem.lines().nth(2).unwrap());
        App {
            id: a.id.clone(),
            signer: Signer::from_pem(&pem).unwrap(),
            private_pem: pem,
            webhook_secret: String::new(),
        }
    };
    // Rotated with no grace: the old key is out at once, the new one works.
    let second = rotate("0s");
    let (status, v) = call(&base, reqwest::Method::POST, "/session/create", &rest_cred(&a), false).await;
    assert_eq!(status, 403, "the rotated-out key: {v}");
    let session = create_session(&base, &rest_cred(&second), false).await;
    // Rotated with a grace period: both keys work during it.
    let third = rotate("1h");
    create_session(&base, &rest_cred(&second), false).await;
    create_session(&base, &rest_cred(&third), false).await;
    // Client tokens follow the same keys.
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    assert!(Client::connect(&ws, &session, &client_token(&a.signer, &a.id, &session, Role::Publisher)).await.is_err());
    Client::connect(&ws, &session, &client_token(&third.signer, &a.id, &session, Role::Publisher)).await.unwrap();
    // `application list` shows the keys, never a private one.
    let out = conclave(&["application", "list", "--json", "--data-dir", data.to_str().unwrap()]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["application_id"], a.id.as_str());
    assert_eq!(listed[0]["keys"].as_array().unwrap().len(), 2, "the key out of grace was dropped: {listed}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE"));
    drop(second.private_pem);

    // Project-level settings take the application ID; a project's secret rotation does not.
    let d = data.to_str().unwrap();
    let out = conclave(&["project", "set-max-participants", "--api-key", &a.id, "--max", "7", "--data-dir", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = conclave(&["project", "rotate-secret", "--api-key", &a.id, "--data-dir", d]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("application rotate-key"));
    // Every change is audited, and no key material is in the log.
    let out = conclave(&["audit", "--json", "--api-key", &a.id, "--data-dir", d]);
    let text = String::from_utf8(out.stdout).unwrap();
    let actions: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    for action in ["application.create", "application.rotate_key", "project.set_max_participants"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    assert!(!text.contains("PRIVATE") && !text.contains(third.private_pem.lines().nth(2).unwrap()));
}

#[tokio::test]
async fn client_tokens_join_over_protocol_v1_and_anvil() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = create_project(&data);
    let a = create_app(&data, None, None);
    let b = create_app(&data, None, None);
    let server = Server::start(&data, &["--allow-private-callbacks", "--allow-http-callbacks"]);
    let base = server.base.clone();
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    let session = create_session(&base, &rest_cred(&a), false).await;
    // A webhook registered with the application's credential, signed with its webhook secret.
    let (hook, received) = receiver(0).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/project/{}/callback", a.id))
        .header("Authorization", format!("Bearer {}", rest_cred(&a)))
        .json(&json!({"group": "connection", "event": "created", "url": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // A token from the CLI (`conclave token --private-key-file`) and one from the signer.
    let key_file = dir.path().join("a.key");
    std::fs::write(&key_file, &a.private_pem).unwrap();
    let out = conclave(&[
        "token",
        "--session-id",
        &session,
        "--role",
        "moderator",
        "--data",
        "name=cli",
        "--private-key-file",
        key_file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut moderator = Client::connect(&ws, &session, &cli_token).await.unwrap();
    let guest_token = client_token(&a.signer, &a.id, &session, Role::Publisher);
    let guest = Client::connect(&ws, &session, &guest_token).await.unwrap();
    assert_eq!(guest.initial_connections()[0].data, "name=cli");
    let first_call = async {
        loop {
            if let Some((_, auth, _)) = received.lock().unwrap().calls.first().cloned() {
                return auth;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let auth = tokio::time::timeout(std::time::Duration::from_secs(30), first_call).await.expect("a webhook arrives");
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let jws = conclave_core::jws::UnverifiedJws::split(jwt).unwrap();
    assert!(
        jws.signature_matches(a.webhook_secret.as_bytes()),
        "the webhook verifies with the application's webhook secret"
    );

    // Over REST with the application's credential: signal everyone, then force a disconnect.
    let signal = format!("/v2/project/{}/session/{session}/signal", a.id);
    assert_eq!(call(&base, reqwest::Method::POST, &signal, &rest_cred(&a), false).await.0, 204);
    moderator
        .wait_for(
            |m| matches!(m, conclave_client::signal::ServerMessage::Signal { .. }),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let kick = format!("/v2/project/{}/session/{session}/connection/{}", a.id, guest.connection_id);
    assert_eq!(call(&base, reqwest::Method::DELETE, &kick, &rest_cred(&a), false).await.0, 204);
    // The kicked participant's RS256 token is revoked, here and at the OpenTok.js anvil.
    assert!(Client::connect(&ws, &session, &guest_token).await.is_err(), "a kicked token cannot rejoin");
    let r = reqwest::Client::new()
        .get(format!("{base}/session/{session}?extended=true"))
        .header("X-OPENTOK-AUTH", &guest_token)
        .send()
        .await
        .unwrap();
    assert!(r.json::<Value>().await.unwrap()[0]["error"]["code"].as_u64().is_some(), "anvil refuses it too");

    // The OpenTok.js adapter's anvil accepts the RS256 token and names the application.
    let anvil = |token: String| {
        let url = format!("{base}/session/{session}?extended=true");
        async move {
            let r = reqwest::Client::new().get(url).header("X-OPENTOK-AUTH", token).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let v = anvil(client_token(&a.signer, &a.id, &session, Role::Publisher)).await;
    assert_eq!(v[0]["partner_id"], a.id.as_str(), "{v}");
    assert!(v[0]["messaging_url"].is_string());

    // Refused: B's key claiming A, B's own token for A's session, a REST credential, a
    // project's HS256 token claiming the application, and an application token for a
    // project's session.
    for (label, token) in [
        ("other key", client_token(&b.signer, &a.id, &session, Role::Publisher)),
        ("other application", client_token(&b.signer, &b.id, &session, Role::Publisher)),
        ("REST credential", rest_cred(&a)),
    ] {
        assert!(Client::connect(&ws, &session, &token).await.is_err(), "{label}");
        assert!(anvil(token).await[0]["error"]["code"].as_u64().is_some(), "{label} at anvil");
    }
    let now = now();
    let hs = conclave_core::token::mint_jwt(
        &a.id,
        project.api_secret.as_bytes(),
        &conclave_core::token::TokenParams {
            session_id: &session,
            role: Role::Publisher,
            create_time: now,
            expire_time: now + 60,
            nonce: 1,
            connection_data: None,
            initial_layout_classes: &[],
        },
    );
    assert!(Client::connect(&ws, &session, &hs).await.is_err(), "HS256 claiming the application");
    let hs = rest_jwt(&project);
    let project_session = create_session(&base, &hs, true).await;
    let t = client_token(&a.signer, &a.id, &project_session, Role::Publisher);
    assert!(Client::connect(&ws, &project_session, &t).await.is_err(), "application token for a project's session");
    moderator.disconnect().await.unwrap();
}

/// Joins as OpenTok.js does over the Rumor socket (CONNECT, SUBSCRIBE, the `create connection`
/// request carrying the token); the socket, or the server's refusal.
async fn rumor_join(base: &str, api_key: &str, session: &str, token: &str) -> Result<impl Sized, String> {
    use conclave_core::opentok::raptor::SessionPath;
    use conclave_core::opentok::rumor::{Limits, RumorFrame};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let uuid = || {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).unwrap();
        conclave_core::ids::uuid_v4(b)
    };
    let url = format!("{}/rumorwebsocketsv2?socketId={}&attempt={}", base.replacen("http", "ws", 1), uuid(), uuid());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| e.to_string())?;
    let conn = uuid();
    let send = |f: RumorFrame| Message::Binary(f.encode().unwrap().into());
    ws.send(send(RumorFrame::connect(&conn, &uuid(), "symphony.conclave"))).await.unwrap();
    ws.send(send(RumorFrame::subscribe(vec![SessionPath::new(api_key, session).address()]))).await.unwrap();
    let create = format!(
        r#"{{"method":"create","uri":"/v2/partner/{api_key}/session/{session}/connection/{conn}","content":{{"userAgent":"test","clientVersion":"js-2.35.2","capabilities":["forceMute"]}}}}"#
    );
    let txn = uuid();
    ws.send(send(RumorFrame::client_message("symphony.conclave", &txn, &conn, Some(token), create))).await.unwrap();
    let limits = Limits::format_only(1 << 20);
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await;
        let Ok(Some(Ok(msg))) = next else { return Err("the socket closed or stalled during the join".into()) };
        let Message::Binary(bytes) = msg else { continue };
        let f = RumorFrame::decode(&bytes, &limits).unwrap();
        if f.transaction_id() == Some(txn.as_str()) && f.status_code().is_some() {
            return if f.is_success() { Ok(ws) } else { Err(f.body.clone()) };
        }
    }
}

#[tokio::test]
async fn client_tokens_join_over_the_opentok_js_rumor_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = create_app(&data, None, None);
    let b = create_app(&data, None, None);
    let server = Server::start(&data, &[]);
    let base = server.base.clone();
    let session = create_session(&base, &rest_cred(&a), false).await;
    let token = client_token(&a.signer, &a.id, &session, Role::Publisher);
    let _socket = rumor_join(&base, &a.id, &session, &token).await.expect("an application's token joins over Rumor");
    // The participant is in the session, as REST (with the application's credential) shows.
    let (status, v) = call(
        &base,
        reqwest::Method::GET,
        &format!("/v2/project/{}/session/{session}/connection", a.id),
        &rest_cred(&a),
        false,
    )
    .await;
    assert_eq!((status, v["count"].as_u64()), (200, Some(1)), "{v}");
    // Another application's key claiming A, and B's own token, are refused on the socket too.
    let forged = client_token(&b.signer, &a.id, &session, Role::Publisher);
    assert!(rumor_join(&base, &a.id, &session, &forged).await.is_err(), "another key claiming the application");
    let foreign = client_token(&b.signer, &b.id, &session, Role::Publisher);
    assert!(rumor_join(&base, &b.id, &session, &foreign).await.is_err(), "another application's token");
}
