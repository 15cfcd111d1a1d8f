//! Hardening round 2: each defect a hostile tester found, replayed against a real server as a
//! regression test (issue 17). Every test asserts the refusal or the cleanup it promises.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use conclave_client::signal::{DisconnectReason, ErrorCode, ServerMessage};
use conclave_client::{Client, ClientError};
use conclave_sdk::{Role, SessionOptions, TokenFormat, TokenOptions};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn ws_url(server: &Server) -> String {
    format!("{}/v1/signal", server.base.replace("http://", "ws://"))
}

fn sdk(p: &Project, server: &Server) -> conclave_sdk::Client {
    conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap()
}

/// The close frame a WebSocket ends with (a reset fails the test).
async fn close_frame_of<S>(sock: &mut S) -> tokio_tungstenite::tungstenite::protocol::CloseFrame
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let close = tokio::time::timeout(T, async {
        while let Some(m) = sock.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(f)) = m {
                return f;
            }
        }
        None
    })
    .await
    .expect("the server answered");
    close.expect("a close frame, not a reset")
}

/// Every spelling of one T1 token the hostile tester rejoined with.
fn t1_respellings(token: &str) -> Vec<(&'static str, String)> {
    let text = String::from_utf8(STANDARD.decode(&token[4..]).unwrap()).unwrap();
    let (header, payload) = text.split_once(':').unwrap();
    let (key, sig) = header.strip_prefix("partner_id=").unwrap().split_once("&sig=").unwrap();
    let wrap = |h: String| format!("T1=={}", STANDARD.encode(format!("{h}:{payload}")));
    vec![
        ("as minted", token.to_owned()),
        ("padding stripped", token.trim_end_matches('=').to_owned()),
        ("url-safe alphabet", format!("T1=={}", URL_SAFE_NO_PAD.encode(&text))),
        ("extra header field", wrap(format!("partner_id={key}&sig={sig}&x=1"))),
        ("upper-case sig", wrap(format!("partner_id={key}&sig={}", sig.to_uppercase()))),
        ("reordered header", wrap(format!("sig={sig}&partner_id={key}"))),
        ("percent-encoded name", wrap(format!("partner%5Fid={key}&sig={sig}"))),
    ]
}

async fn assert_no_spelling_joins(ws: &str, session: &str, token: &str) {
    for (name, variant) in t1_respellings(token) {
        match Client::connect(ws, session, &variant).await {
            Err(ClientError::Refused { code, .. }) => {
                assert!(
                    matches!(code, ErrorCode::TokenRevoked | ErrorCode::InvalidToken),
                    "{name}: refused with {code:?}"
                )
            }
            Err(e) => panic!("{name}: expected a typed refusal, got {e}"),
            Ok(_) => panic!("{name}: a kicked token joined again"),
        }
    }
}

#[tokio::test]
async fn a_kicked_token_cannot_rejoin_in_any_spelling_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let mut server = Server::start(&data, &[]);
    let (sdk, ws) = (sdk(&p, &server), ws_url(&server));
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let t1 = |role| {
        let mut o = TokenOptions::new(role);
        o.format = TokenFormat::T1;
        sdk.generate_token(&s, &o).unwrap()
    };
    let moderator = Client::connect(&ws, &s, &t1(Role::Moderator)).await.unwrap();

    // A kick over REST.
    let rest_kicked = t1(Role::Publisher);
    let mut victim = Client::connect(&ws, &s, &rest_kicked).await.unwrap();
    let path = format!("session/{s}/connection/{}", victim.connection_id);
    assert_eq!(rest_call(&server.base, &p, reqwest::Method::DELETE, &path, None).await.0, 204);
    assert_eq!(victim.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    assert_no_spelling_joins(&ws, &s, &rest_kicked).await;

    // A kick by a moderator.
    let mod_kicked = t1(Role::Publisher);
    let mut victim = Client::connect(&ws, &s, &mod_kicked).await.unwrap();
    moderator.force_disconnect(&victim.connection_id).await.unwrap();
    assert_eq!(victim.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    assert_no_spelling_joins(&ws, &s, &mod_kicked).await;

    // The lenient alphabets still admit a token nobody kicked.
    let fresh = t1(Role::Publisher);
    Client::connect(&ws, &s, fresh.trim_end_matches('=')).await.expect("an unkicked token joins unpadded");

    // After a restart on the same data directory, every spelling stays refused.
    drop(moderator);
    assert!(server.stop());
    let server = Server::start(&data, &[]);
    let ws = ws_url(&server);
    assert_no_spelling_joins(&ws, &s, &rest_kicked).await;
    assert_no_spelling_joins(&ws, &s, &mod_kicked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_closed_and_frees_its_seat_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server =
        Server::start(&data, &["--reconnect-grace", "1s", "--rest-rate-per-ip", "0", "--rest-rate-per-key", "0"]);
    let (sdk, ws) = (sdk(&p, &server), ws_url(&server));
    let opts = SessionOptions { max_participants: Some(2), ..SessionOptions::routed() };
    let s = sdk.create_session(&opts).await.unwrap().session_id;
    let token = |role| sdk.generate_token(&s, &TokenOptions::new(role)).unwrap();

    // The slow reader joins, then never reads again.
    let (mut slow, _) = tokio_tungstenite::connect_async(&ws).await.unwrap();
    let hello = serde_json::json!({"type": "connect", "v": 1, "sessionId": s, "token": token(Role::Publisher)});
    slow.send(tokio_tungstenite::tungstenite::Message::Text(hello.to_string().into())).await.unwrap();
    let connected = slow.next().await.unwrap().unwrap().into_text().unwrap();
    let connected: serde_json::Value = serde_json::from_str(&connected).unwrap();
    let slow_id = connected["connectionId"].as_str().expect("connected").to_owned();
    let mut fast = Client::connect(&ws, &s, &token(Role::Publisher)).await.unwrap();
    assert!(matches!(
        Client::connect(&ws, &s, &token(Role::Publisher)).await,
        Err(ClientError::Refused { code: ErrorCode::SessionFull, .. })
    ));

    // Signals until the slow reader's queue overflows: the server must drop it on its own.
    let body = serde_json::json!({"type": "flood", "data": "x".repeat(8000)});
    let mut gone = None;
    for _ in 0..40 {
        for _ in 0..100 {
            let (status, _) =
                rest_call(&server.base, &p, reqwest::Method::POST, &format!("session/{s}/signal"), Some(body.clone()))
                    .await;
            assert_eq!(status, 204);
        }
        let destroyed = |m: &ServerMessage| matches!(m, ServerMessage::ConnectionDestroyed { connection_id, .. } if *connection_id == slow_id);
        if let Ok(m) = fast.wait_for(destroyed, Duration::from_millis(200)).await {
            gone = Some(m);
            break;
        }
    }
    let gone = gone.expect("the slow reader was never removed: a ghost");
    assert!(matches!(gone, ServerMessage::ConnectionDestroyed { reason: DisconnectReason::NetworkDisconnected, .. }));
    // Its TCP connection aborted now changes nothing: the seat is already free.
    drop(slow);
    let third = Client::connect(&ws, &s, &token(Role::Publisher)).await.expect("the seat is free again");
    let (_, listed) = rest_call(&server.base, &p, reqwest::Method::GET, &format!("session/{s}/connection"), None).await;
    let ids: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|c| c["connectionId"].as_str().unwrap()).collect();
    assert!(!ids.contains(&slow_id.as_str()), "{listed}");
    assert!(ids.contains(&third.connection_id.as_str()) && ids.contains(&fast.connection_id.as_str()), "{listed}");
    assert!(server.logs().contains("outbound queue full"), "the overflow is logged");
}

#[tokio::test]
async fn a_second_server_on_one_data_directory_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let first = Server::start(&data, &[]);
    let mut second = std::process::Command::new(BIN)
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server started on the same data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("in use by another conclave serve") && err.contains(&first.child.id().to_string()), "{err}");
    let s = sdk(&p, &first).create_session(&SessionOptions::routed()).await.unwrap();
    assert!(!s.session_id.is_empty(), "the first server still serves");
}

#[tokio::test]
async fn a_storage_region_cannot_send_the_server_anywhere_nor_crash_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    for region in [format!("x@127.0.0.1:{port}/"), "x@169.254.169.254:443/".into(), format!("127.0.0.1:{port}#")] {
        let body = serde_json::json!({"type": "s3", "config": {"bucket": "b", "accessKey": "a", "secretKey": "s", "region": region}});
        let (status, v) = rest_call(&server.base, &p, reqwest::Method::PUT, "archive/storage", Some(body)).await;
        assert_eq!(status, 400, "{region}: {v}");
        assert!(v["message"].as_str().unwrap().contains("region"), "{region}: {v}");
    }
    let probe = tokio::time::timeout(Duration::from_millis(500), trap.accept()).await;
    assert!(probe.is_err(), "the server connected to the loopback listener");
}

#[tokio::test]
async fn rest_signals_keep_their_limits_with_nobody_connected_and_an_ended_session_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let s = sdk(&p, &server).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let path = format!("session/{s}/signal");
    let signal = |body| rest_call(&server.base, &p, reqwest::Method::POST, &path, Some(body));
    assert_eq!(signal(serde_json::json!({"type": "t", "data": "x".repeat(9000)})).await.0, 413);
    assert_eq!(signal(serde_json::json!({"type": "t".repeat(200), "data": "x"})).await.0, 413);
    assert_eq!(signal(serde_json::json!({"type": "t", "data": "x"})).await.0, 204);
    assert_eq!(rest_call(&server.base, &p, reqwest::Method::DELETE, &format!("session/{s}"), None).await.0, 204);
    let (status, v) = signal(serde_json::json!({"type": "t", "data": "x"})).await;
    assert_eq!(status, 409, "{v}");
}

#[tokio::test]
async fn a_malformed_sdp_gets_a_fixed_message_with_the_requests_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--rtc-host", "127.0.0.1"]);
    let (sdk, ws) = (sdk(&p, &server), ws_url(&server));
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let mut c =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap()).await.unwrap();
    c.send_raw(r#"{"id":4242,"type":"mediaOffer","sdp":"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nm=audio x"}"#).unwrap();
    let err = c.wait_for(|m| matches!(m, ServerMessage::Error { .. }), T).await.unwrap();
    let ServerMessage::Error { id, code, message } = err else { unreachable!() };
    assert_eq!((id, code), (Some(4242), ErrorCode::MediaFailed));
    assert!(!message.contains("0x") && !message.contains("Pointer"), "{message}");
}

#[tokio::test]
async fn an_oversized_websocket_frame_closes_with_1009_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let server = Server::start(&data, &[]);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&server)).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text("x".repeat(200 * 1024).into())).await.unwrap();
    let frame = close_frame_of(&mut ws).await;
    assert_eq!(u16::from(frame.code), 1009);
    assert!(frame.reason.contains("too big"), "{}", frame.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_from_one_address_cannot_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let server =
        Server::start_with_nofile(&data, &["--header-read-timeout", "2s", "--max-connections-per-ip", "200"], 512);
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // 600 half-sent requests from 127.0.0.2 against a 512-descriptor limit.
    let mut held = Vec::new();
    for _ in 0..600 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(mut s) = socket.connect(addr).await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
            held.push(s);
        }
    }
    let healthz = reqwest::get(format!("{}/healthz", server.base)).await.expect("/healthz answers");
    assert_eq!(healthz.status(), 200);
    // The half-sent requests are cut once the header deadline passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut closed = 0;
    for s in &mut held {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(n)) => closed += usize::from(n == 0 || buf[..n].starts_with(b"HTTP/1.1 408")),
            Ok(Err(_)) => closed += 1, // reset: refused over the per-address cap
            Err(_) => {}
        }
    }
    assert_eq!(closed, held.len(), "every half-sent request was cut by the header deadline");
}

#[tokio::test]
async fn demo_logins_back_off_and_env_passwords_are_checked_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_project(&data);
    let short = std::process::Command::new(BIN)
        .args(["serve", "--demo", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("CONCLAVE_DEMO_PASSWORD", "short")
        .env("CONCLAVE_DEMO_MODERATOR_PASSWORD", "moderator-pass-2")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("too short"));

    let env =
        [("CONCLAVE_DEMO_PASSWORD", "participant-pass-1"), ("CONCLAVE_DEMO_MODERATOR_PASSWORD", "moderator-pass-2")];
    let server = Server::start_with(&data, "127.0.0.1:0", &["--demo"], "http", &env);
    let login = |password: &str| {
        reqwest::Client::new()
            .post(format!("{}/demo/api/login", server.base))
            .json(&serde_json::json!({"name": "mallory", "password": password}))
            .send()
    };
    assert_eq!(login("guess-1").await.unwrap().status(), 401);
    let locked = login("guess-2").await.unwrap();
    assert_eq!(locked.status(), 429, "a second guess at once waits");
    assert!(locked.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ok = login("participant-pass-1").await.unwrap();
    assert_eq!(ok.status(), 200, "the right password after the wait");
    for h in ["x-frame-options", "x-content-type-options", "referrer-policy"] {
        assert!(ok.headers().contains_key(h), "{h}");
    }
    let page = reqwest::get(format!("{}/demo/", server.base)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("img-src 'self' data:"), "{csp}");
    drop(page);
    let logs = server.logs();
    assert!(!logs.contains("participant-pass-1") && !logs.contains("moderator-pass-2"));
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    create_project(&data);
    let _server = Server::start(&data, &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path) & 0o077, 0, "{} is readable by others", path.display());
        }
    }
}

#[tokio::test]
async fn a_full_disk_makes_the_node_unready_and_writes_answer_507() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    // A floor no disk can meet: the node sees its disk as full.
    let server = Server::start(&data, &["--min-free-disk", "1P"]);
    assert_eq!(reqwest::get(format!("{}/healthz", server.base)).await.unwrap().status(), 200, "alive");
    let ready = reqwest::get(format!("{}/readyz", server.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("disk is full"));
    let create = reqwest::Client::new()
        .post(format!("{}/session/create", server.base))
        .header("X-OPENTOK-AUTH", rest_jwt(&p))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 507);
    let body: serde_json::Value = create.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("disk is full"), "{body}");
    let (status, _) = rest_call(&server.base, &p, reqwest::Method::GET, "callback", None).await;
    assert_eq!(status, 200, "reads still work");
    drop(server);
    let server = Server::start(&data, &[]);
    assert_eq!(
        reqwest::get(format!("{}/readyz", server.base)).await.unwrap().status(),
        200,
        "the default floor is met"
    );
}

#[tokio::test]
async fn callbacks_per_project_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--allow-private-callbacks", "--allow-http-callbacks"]);
    for i in 0..20 {
        let (status, v) =
            register_callback(&server.base, &p, "connection", "created", &format!("http://127.0.0.1:9/hook{i}")).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = register_callback(&server.base, &p, "connection", "created", "http://127.0.0.1:9/one-more").await;
    assert_eq!(status, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("at most 20"));
}

/// The same classes hold on the OpenTok.js wire protocol: anvil refuses every spelling of a
/// kicked token, and an oversized Rumor frame closes its socket with 1009.
#[tokio::test]
async fn the_opentok_protocol_refuses_kicked_tokens_and_oversized_frames_alike() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &[]);
    let (sdk, ws) = (sdk(&p, &server), ws_url(&server));
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let mut o = TokenOptions::new(Role::Publisher);
    o.format = TokenFormat::T1;
    let token = sdk.generate_token(&s, &o).unwrap();
    let anvil = |t: String| {
        reqwest::Client::new()
            .get(format!("{}/anvil.opentok.com/session/{s}?extended=true", server.base))
            .header("X-OPENTOK-AUTH", t)
            .send()
    };
    let v: serde_json::Value = anvil(token.clone()).await.unwrap().json().await.unwrap();
    assert!(v[0]["messaging_url"].as_str().is_some(), "a valid token gets the session info: {v}");
    let mut victim = Client::connect(&ws, &s, &token).await.unwrap();
    let path = format!("session/{s}/connection/{}", victim.connection_id);
    assert_eq!(rest_call(&server.base, &p, reqwest::Method::DELETE, &path, None).await.0, 204);
    victim.wait_disconnected(T).await.unwrap();
    for (name, variant) in t1_respellings(&token) {
        let resp = anvil(variant).await.unwrap();
        assert_eq!(resp.status(), 200, "anvil errors come with 2xx, as the client needs");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v[0]["error"]["code"], 403, "{name}: {v}");
    }
    let rumor = format!("{}/anvil.opentok.com/rumorwebsocketsv2", server.base.replace("http://", "ws://"));
    let (mut sock, _) = tokio_tungstenite::connect_async(&rumor).await.unwrap();
    sock.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0u8; 200 * 1024].into())).await.unwrap();
    let frame = close_frame_of(&mut sock).await;
    assert_eq!(u16::from(frame.code), 1009, "{}", frame.reason);
}
