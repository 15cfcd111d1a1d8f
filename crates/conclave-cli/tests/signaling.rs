//! Signaling against a real `conclave serve`: several Rust clients join, publish, subscribe,
//! signal and get moderated, from clients and over REST, with every role enforced.

mod common;

use common::*;
use conclave_client::signal::{DisconnectReason, ErrorCode, ServerMessage, StreamDestroyedReason};
use conclave_client::{Client, ClientError, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenFormat, TokenOptions};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

struct Env {
    server: Server,
    sdk: conclave_sdk::Client,
    secret: String,
    ws: String,
    _dir: tempfile::TempDir,
}

async fn env(extra: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, extra);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    Env { server, sdk, ws, secret: p.api_secret, _dir: dir }
}

impl Env {
    async fn session(&self, opts: SessionOptions) -> String {
        self.sdk.create_session(&opts).await.unwrap().session_id
    }
    fn token(&self, session: &str, role: Role, data: &str) -> String {
        let mut o = TokenOptions::new(role);
        o.data = Some(data.into());
        self.sdk.generate_token(session, &o).unwrap()
    }
    async fn join(&self, session: &str, role: Role, data: &str) -> Client {
        Client::connect(&self.ws, session, &self.token(session, role, data)).await.unwrap()
    }
    async fn rest(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> reqwest::Response {
        let mut r = reqwest::Client::new()
            .request(method, format!("{}/v2/project/{}{path}", self.server.base, self.sdk.api_key()))
            .header("X-OPENTOK-AUTH", self.sdk.rest_credential());
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
}

fn refused(r: Result<Client, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Refused { code, .. }) => code,
        Err(e) => panic!("expected a typed refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

fn is_conn_destroyed(id: &str, reason: DisconnectReason) -> impl Fn(&ServerMessage) -> bool + '_ {
    move |m| matches!(m, ServerMessage::ConnectionDestroyed { connection_id, reason: r } if connection_id == id && *r == reason)
}

#[tokio::test]
async fn joins_leaves_snapshots_and_signals() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "name=a").await;
    let stream = a.publish(PublishOptions { name: Some("cam".into()), ..Default::default() }).await.unwrap();
    let mut b = e.join(&s, Role::Publisher, "name=b").await;
    // The joiner gets the others and their streams; the others get connectionCreated.
    assert_eq!(b.initial_connections().iter().map(|c| c.data.as_str()).collect::<Vec<_>>(), ["name=a"]);
    assert_eq!(b.initial_streams()[0].stream_id, stream.stream_id);
    let created = a.wait_for(|m| matches!(m, ServerMessage::ConnectionCreated { .. }), T).await.unwrap();
    assert!(
        matches!(created, ServerMessage::ConnectionCreated { connection } if connection.connection_id == b.connection_id && connection.data == "name=b")
    );

    let mut c = e.join(&s, Role::Subscriber, "name=c").await;
    // To everyone (the sender included), then to one connection only.
    b.signal(None, "chat", "hello all").await.unwrap();
    for client in [&mut a, &mut b, &mut c] {
        let got = client.wait_for(|m| matches!(m, ServerMessage::Signal { .. }), T).await.unwrap();
        assert!(
            matches!(got, ServerMessage::Signal { signal_type, data, .. } if signal_type == "chat" && data == "hello all")
        );
    }
    b.signal(Some(&c.connection_id), "dm", "just you").await.unwrap();
    let got = c.wait_for(|m| matches!(m, ServerMessage::Signal { .. }), T).await.unwrap();
    assert!(
        matches!(got, ServerMessage::Signal { from: Some(f), data, .. } if f == b.connection_id && data == "just you")
    );
    a.signal(None, "marker", "end").await.unwrap();
    let next = b.wait_for(|m| matches!(m, ServerMessage::Signal { .. }), T).await.unwrap();
    assert!(
        matches!(next, ServerMessage::Signal { signal_type, .. } if signal_type == "marker"),
        "b must not get the direct signal"
    );

    // Leaving on purpose: clientDisconnected, with the stream destroyed first.
    let a_id = a.connection_id.clone();
    a.disconnect().await.unwrap();
    let got = b.wait_for(|m| matches!(m, ServerMessage::StreamDestroyed { .. }), T).await.unwrap();
    assert_eq!(
        got,
        ServerMessage::StreamDestroyed {
            stream_id: stream.stream_id.clone(),
            reason: StreamDestroyedReason::ClientDisconnected
        }
    );
    b.wait_for(is_conn_destroyed(&a_id, DisconnectReason::ClientDisconnected), T).await.unwrap();
}

#[tokio::test]
async fn subscriber_counts_follow_media_subscriptions_and_are_readable_over_rest() {
    use conclave_client::signal::{ClientMessage, SdpKind};
    let e = env(&["--reconnect-grace", "300ms"]).await;
    // Relayed: a subscription counts once the publisher answered the subscriber's offer.
    let s = e.session(SessionOptions::default()).await;
    let mut p = e.join(&s, Role::Publisher, "p").await;
    let st = p.publish(PublishOptions::default()).await.unwrap().stream_id;
    let s1 = e.join(&s, Role::Subscriber, "s1").await;
    let s2 = e.join(&s, Role::Moderator, "s2").await;
    let count_is =
        |n: u32| move |m: &ServerMessage| matches!(m, ServerMessage::SubscriberCount { count, .. } if *count == n);
    let answer = |to: &str| ClientMessage::Sdp {
        to: to.to_owned(),
        stream_id: st.clone(),
        kind: SdpKind::Answer,
        sdp: "v=0".into(),
    };
    s1.subscribe(&st).await.unwrap();
    s2.subscribe(&st).await.unwrap();
    let list: serde_json::Value =
        e.rest(reqwest::Method::GET, &format!("/session/{s}/stream"), None).await.json().await.unwrap();
    assert_eq!(list["items"][0]["subscriberCount"], 0, "asking to subscribe is not watching");
    p.send(answer(&s1.connection_id)).unwrap();
    p.wait_for(count_is(1), T).await.unwrap();
    p.send(answer(&s2.connection_id)).unwrap();
    p.wait_for(count_is(2), T).await.unwrap();
    let list: serde_json::Value =
        e.rest(reqwest::Method::GET, &format!("/session/{s}/stream"), None).await.json().await.unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["items"][0]["id"], st.as_str());
    assert_eq!(list["items"][0]["subscriberCount"], 2);
    s2.unsubscribe(&st).await.unwrap();
    p.wait_for(count_is(1), T).await.unwrap();
    s1.drop_network();
    // After the reconnect grace (300 ms here) the dropped subscriber no longer counts.
    p.wait_for(count_is(0), T).await.unwrap();
}

#[tokio::test]
async fn roles_are_enforced_by_the_server() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let sub = e.join(&s, Role::Subscriber, "").await;
    let pubonly = e.join(&s, Role::PublisherOnly, "").await;
    let publisher = e.join(&s, Role::Publisher, "").await;
    let forbidden =
        |r: Result<(), ClientError>| matches!(r, Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }));
    assert!(matches!(
        sub.publish(PublishOptions::default()).await,
        Err(ClientError::Refused { code: ErrorCode::Forbidden, .. })
    ));
    assert!(forbidden(sub.signal(None, "x", "y").await));
    assert!(forbidden(pubonly.signal(None, "x", "y").await));
    let st = publisher.publish(PublishOptions::default()).await.unwrap().stream_id;
    assert!(forbidden(pubonly.subscribe(&st).await));
    assert!(forbidden(publisher.force_disconnect(&sub.connection_id).await));
    assert!(forbidden(publisher.force_mute(&st).await));
    assert!(forbidden(sub.force_unpublish(&st).await));
    assert!(forbidden(sub.unpublish(&st).await));
    // Nothing happened: still three connections and one unmuted stream with no subscriber.
    let conns: serde_json::Value =
        e.rest(reqwest::Method::GET, &format!("/session/{s}/connection"), None).await.json().await.unwrap();
    assert_eq!(conns["count"], 3);
    let st_json: serde_json::Value =
        e.rest(reqwest::Method::GET, &format!("/session/{s}/stream/{st}"), None).await.json().await.unwrap();
    assert_eq!((st_json["hasAudio"].as_bool(), st_json["subscriberCount"].as_u64()), (Some(true), Some(0)));
}

#[tokio::test]
async fn max_participants_is_exact_under_a_concurrent_join_storm() {
    let e = env(&[]).await;
    let mut opts = SessionOptions::routed();
    opts.max_participants = Some(10);
    let s = e.session(opts).await;
    let mut observer = e.join(&s, Role::Moderator, "observer").await;
    let tokens: Vec<String> = (0..50).map(|i| e.token(&s, Role::Publisher, &format!("n={i}"))).collect();
    let joins = tokens.iter().map(|t| Client::connect(&e.ws, &s, t));
    let results = futures_join_all(joins).await;
    let admitted: Vec<&Client> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let full =
        results.iter().filter(|r| matches!(r, Err(ClientError::Refused { code: ErrorCode::SessionFull, .. }))).count();
    assert_eq!(admitted.len(), 9, "the observer holds one of the 10 seats");
    assert_eq!(full, 41);
    // The observer saw exactly the 9 admitted joins, nothing of the refused ones.
    let mut created = 0;
    while let Ok(m) = observer.wait_for(|_| true, Duration::from_millis(300)).await {
        assert!(matches!(m, ServerMessage::ConnectionCreated { .. }), "{m:?}");
        created += 1;
    }
    assert_eq!(created, 9);
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    // Poll them all concurrently on this task.
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.extend(done.into_iter().map(Option::unwrap));
    out
}

#[tokio::test]
async fn a_kicked_token_stays_refused_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let mut server = Server::start(&data, &[]);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let kick_token = sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap();
    let mut moderator =
        Client::connect(&ws, &s, &sdk.generate_token(&s, &TokenOptions::new(Role::Moderator)).unwrap()).await.unwrap();
    let mut victim = Client::connect(&ws, &s, &kick_token).await.unwrap();
    moderator.force_disconnect(&victim.connection_id).await.unwrap();
    assert_eq!(victim.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    moderator.wait_for(is_conn_destroyed(&victim.connection_id, DisconnectReason::ForceDisconnected), T).await.unwrap();
    assert_eq!(refused(Client::connect(&ws, &s, &kick_token).await), ErrorCode::TokenRevoked);

    // After a restart on the same data directory the block holds.
    assert!(server.stop());
    let server = Server::start(&data, &[]);
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    assert_eq!(refused(Client::connect(&ws, &s, &kick_token).await), ErrorCode::TokenRevoked);
    // A fresh token for the same person works (the app decides whether to mint one).
    let again = sdk.generate_token(&s, &TokenOptions::new(Role::Publisher)).unwrap();
    Client::connect(&ws, &s, &again).await.unwrap();
}

#[tokio::test]
async fn an_ended_session_disconnects_everyone_and_admits_no_one() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let token = e.token(&s, Role::Publisher, "");
    let mut a = Client::connect(&e.ws, &s, &token).await.unwrap();
    let resp = e.rest(reqwest::Method::DELETE, &format!("/session/{s}"), None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(a.wait_disconnected(T).await.unwrap(), DisconnectReason::SessionEnded);
    assert_eq!(refused(Client::connect(&e.ws, &s, &token).await), ErrorCode::SessionEnded);
    assert_eq!(refused(Client::connect(&e.ws, &s, &e.token(&s, Role::Moderator, "")).await), ErrorCode::SessionEnded);
    let info = e.sdk.get_session(&s).await.unwrap();
    assert!(info.ended_at.is_some());
}

#[tokio::test]
async fn expired_foreign_and_malformed_tokens_are_refused() {
    let e = env(&[]).await;
    let a = e.session(SessionOptions::routed()).await;
    let b = e.session(SessionOptions::routed()).await;
    assert_eq!(refused(Client::connect(&e.ws, &b, &e.token(&a, Role::Publisher, "")).await), ErrorCode::WrongSession);
    // Minted by hand: the SDK refuses to mint an expired token.
    let now = now();
    let expired = {
        let p = conclave_core::token::TokenParams {
            session_id: &a,
            role: Role::Publisher,
            create_time: now - 7200,
            expire_time: now - 3600,
            nonce: 1,
            connection_data: None,
            initial_layout_classes: &[],
        };
        conclave_core::token::mint_jwt(e.sdk.api_key(), e.secret.as_bytes(), &p)
    };
    assert_eq!(refused(Client::connect(&e.ws, &a, &expired).await), ErrorCode::TokenExpired);
    assert_eq!(refused(Client::connect(&e.ws, &a, "T1==garbage").await), ErrorCode::InvalidToken);
    assert_eq!(refused(Client::connect(&e.ws, &a, &e.sdk.rest_credential()).await), ErrorCode::InvalidToken);
    // Both token formats connect.
    let mut o = TokenOptions::new(Role::Publisher);
    o.format = TokenFormat::T1;
    Client::connect(&e.ws, &a, &e.sdk.generate_token(&a, &o).unwrap()).await.unwrap();
}

#[tokio::test]
async fn moderation_over_rest_reaches_the_clients() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    let mut b = e.join(&s, Role::Publisher, "b").await;
    let sa = a.publish(PublishOptions::default()).await.unwrap().stream_id;
    let sb = b.publish(PublishOptions::default()).await.unwrap().stream_id;
    use reqwest::Method;

    // Signals: to the session, and to one connection (204).
    let r = e
        .rest(
            Method::POST,
            &format!("/session/{s}/signal"),
            Some(serde_json::json!({"type": "notice", "data": "from the server"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let got = a.wait_for(|m| matches!(m, ServerMessage::Signal { .. }), T).await.unwrap();
    assert_eq!(got, ServerMessage::Signal { from: None, signal_type: "notice".into(), data: "from the server".into() });
    let r = e
        .rest(
            Method::POST,
            &format!("/session/{s}/connection/{}/signal", b.connection_id),
            Some(serde_json::json!({"type": "dm", "data": "b only"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    b.wait_for(|m| matches!(m, ServerMessage::Signal { data, .. } if data == "b only"), T).await.unwrap();
    let r = e
        .rest(
            Method::POST,
            &format!("/session/{s}/signal"),
            Some(serde_json::json!({"type": "x", "data": "d".repeat(9000)})),
        )
        .await;
    assert_eq!(r.status(), 413);

    // Mute one stream: its publisher is told, everyone sees hasAudio=false.
    let r = e.rest(Method::POST, &format!("/session/{s}/stream/{sa}/mute"), None).await;
    assert_eq!(r.status(), 200);
    a.wait_for(|m| matches!(m, ServerMessage::MuteForced { stream_id } if stream_id == &sa), T).await.unwrap();
    // Mute all but b's stream (Node's spelling of the exclusion list).
    a.set_stream_property(&sa, Some(true), None).await.unwrap();
    let r = e
        .rest(
            Method::POST,
            &format!("/session/{s}/mute"),
            Some(serde_json::json!({"active": true, "excludedStreamIds": [sb]})),
        )
        .await;
    assert_eq!(r.status(), 200);
    a.wait_for(|m| matches!(m, ServerMessage::MuteForced { .. }), T).await.unwrap();
    let streams: serde_json::Value =
        e.rest(Method::GET, &format!("/session/{s}/stream"), None).await.json().await.unwrap();
    let audio = |id: &str| {
        streams["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()["hasAudio"].as_bool().unwrap()
    };
    assert!(!audio(&sa) && audio(&sb));
    let r = e.rest(Method::POST, &format!("/session/{s}/mute"), Some(serde_json::json!({"active": false}))).await;
    assert_eq!(r.status(), 200);

    // Class lists (200), and get stream with the Node content-type trap.
    let r = e
        .rest(
            Method::PUT,
            &format!("/session/{s}/stream"),
            Some(serde_json::json!({"items": [{"id": sa, "layoutClassList": ["full"]}]})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/project/{}/session/{s}/stream/{sa}", e.server.base, e.sdk.api_key()))
        .header("X-OPENTOK-AUTH", e.sdk.rest_credential())
        .header("User-Agent", "OpenTok-Node-SDK/2.23.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["layoutClassList"], serde_json::json!(["full"]));
    assert_eq!(v["videoType"], "camera");

    // Force disconnect over REST (204), then 404 for a connection that is gone.
    let r = e.rest(Method::DELETE, &format!("/session/{s}/connection/{}", b.connection_id), None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(b.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    a.wait_for(is_conn_destroyed(&b.connection_id, DisconnectReason::ForceDisconnected), T).await.unwrap();
    let r = e.rest(Method::DELETE, &format!("/session/{s}/connection/{}", b.connection_id), None).await;
    assert_eq!(r.status(), 404);
    let r = e.rest(Method::POST, &format!("/session/{s}/stream/nope/mute"), None).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_dropped_socket_resumes_with_the_same_connection_id() {
    let e = env(&["--reconnect-grace", "3s"]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    let b = e.join(&s, Role::Publisher, "b").await;
    let (id, resume) = (b.connection_id.clone(), b.resume_token.clone());
    b.drop_network();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        Client::resume(&e.ws, &id, "wrong-token").await,
        Err(ClientError::Refused { code: ErrorCode::ResumeFailed, .. })
    ));
    let b2 = Client::resume(&e.ws, &id, &resume).await.unwrap();
    assert_eq!(b2.connection_id, id);
    b2.signal(None, "back", "").await.unwrap();
    // a saw no departure, only the signal from the same connection.
    let m = a.wait_for(|m| !matches!(m, ServerMessage::ConnectionCreated { .. }), T).await.unwrap();
    assert!(matches!(&m, ServerMessage::Signal { from: Some(f), .. } if *f == id), "{m:?}");
}

#[tokio::test]
async fn a_dropped_socket_leaves_as_network_disconnected_after_the_grace() {
    let e = env(&["--reconnect-grace", "300ms"]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    let b = e.join(&s, Role::Publisher, "b").await;
    let id = b.connection_id.clone();
    b.drop_network();
    a.wait_for(is_conn_destroyed(&id, DisconnectReason::NetworkDisconnected), T).await.unwrap();
}

#[tokio::test]
async fn bad_messages_get_typed_errors_and_abuse_closes_the_socket() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    let mut watcher = e.join(&s, Role::Publisher, "w").await;
    let expect_error =
        |code: ErrorCode| move |m: &ServerMessage| matches!(m, ServerMessage::Error { code: c, .. } if *c == code);
    a.send_raw("{not json").unwrap();
    a.wait_for(expect_error(ErrorCode::BadMessage), T).await.unwrap();
    a.send_raw(format!(r#"{{"type":"signal","data":"{}"}}"#, "x".repeat(20_000))).unwrap();
    a.wait_for(expect_error(ErrorCode::MessageTooLarge), T).await.unwrap();
    a.send_raw(r#"{"type":"subscribe","streamId":"nope","id":9}"#).unwrap();
    a.wait_for(|m| matches!(m, ServerMessage::Error { id: Some(9), code: ErrorCode::NotFound, .. }), T).await.unwrap();
    // The connection still works.
    a.signal(None, "ok", "").await.unwrap();
    // A flood: rate-limited, then closed; the others see it leave.
    for _ in 0..400 {
        let _ = a.send_raw("{}");
    }
    watcher.wait_for(is_conn_destroyed(&a.connection_id, DisconnectReason::NetworkDisconnected), T).await.unwrap();
    // Before connecting, anything but connect/resume is refused.
    let (mut ws, _) = tokio_tungstenite_connect(&e.ws).await;
    ws_send(&mut ws, r#"{"type":"publish"}"#).await;
    let reply = ws_recv(&mut ws).await;
    assert!(reply.contains("not_connected"), "{reply}");
}

#[tokio::test]
async fn relayed_sessions_relay_sdp_and_ice_between_subscription_peers() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::default()).await;
    let mut p = e.join(&s, Role::Publisher, "p").await;
    let mut v = e.join(&s, Role::Subscriber, "v").await;
    let st = p.publish(PublishOptions::default()).await.unwrap().stream_id;
    v.subscribe(&st).await.unwrap();
    use conclave_client::signal::{ClientMessage, SdpKind};
    p.send(ClientMessage::Sdp {
        to: v.connection_id.clone(),
        stream_id: st.clone(),
        kind: SdpKind::Offer,
        sdp: "v=0 offer".into(),
    })
    .unwrap();
    let got = v.wait_for(|m| matches!(m, ServerMessage::Sdp { .. }), T).await.unwrap();
    assert_eq!(
        got,
        ServerMessage::Sdp {
            from: p.connection_id.clone(),
            stream_id: st.clone(),
            kind: SdpKind::Offer,
            sdp: "v=0 offer".into()
        }
    );
    v.send(ClientMessage::Sdp {
        to: p.connection_id.clone(),
        stream_id: st.clone(),
        kind: SdpKind::Answer,
        sdp: "v=0 answer".into(),
    })
    .unwrap();
    p.wait_for(|m| matches!(m, ServerMessage::Sdp { kind: SdpKind::Answer, .. }), T).await.unwrap();
    v.send(ClientMessage::Ice {
        to: p.connection_id.clone(),
        stream_id: st.clone(),
        candidate: serde_json::json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}),
    })
    .unwrap();
    p.wait_for(|m| matches!(m, ServerMessage::Ice { .. }), T).await.unwrap();
}

async fn tokio_tungstenite_connect(
    url: &str,
) -> (tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, ()) {
    (tokio_tungstenite::connect_async(url).await.unwrap().0, ())
}

async fn ws_send(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    text: &str,
) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(text.to_owned().into())).await.unwrap();
}

async fn ws_recv(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> String {
    use futures_util::StreamExt;
    loop {
        match ws.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_drains_signaling_and_exits_cleanly() {
    let mut e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    assert!(e.server.stop(), "exit status 0 after SIGTERM with a client connected");
    assert_eq!(a.wait_disconnected(T).await.unwrap(), DisconnectReason::NetworkDisconnected);
    assert!(e.server.logs().contains("signaling drained"));
}

#[tokio::test]
async fn the_project_wide_participant_limit_applies_to_sessions_without_their_own() {
    let e = env(&[]).await;
    let d = e.server.data_dir.to_str().unwrap().to_owned();
    let out =
        conclave(&["project", "set-max-participants", "--data-dir", &d, "--api-key", e.sdk.api_key(), "--max", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = e.session(SessionOptions::routed()).await;
    let _a = e.join(&s, Role::Publisher, "").await;
    let _b = e.join(&s, Role::Publisher, "").await;
    assert_eq!(refused(Client::connect(&e.ws, &s, &e.token(&s, Role::Publisher, "")).await), ErrorCode::SessionFull);
    // A session's own maxParticipants wins over the project default.
    let mut opts = SessionOptions::routed();
    opts.max_participants = Some(3);
    let s3 = e.session(opts).await;
    let _c: Vec<Client> = futures_join_all((0..3).map(|_| e.join(&s3, Role::Publisher, ""))).await;
    assert_eq!(refused(Client::connect(&e.ws, &s3, &e.token(&s3, Role::Publisher, "")).await), ErrorCode::SessionFull);
}

#[tokio::test]
async fn personal_data_in_connection_data_is_warned_or_rejected_per_policy() {
    let e = env(&[]).await;
    let d = e.server.data_dir.to_str().unwrap().to_owned();
    let s = e.session(SessionOptions::routed()).await;
    let email = "name=Bo&email=bo.smith@example.com";
    // Default policy: warn. The join works; the log names the kind, never the data.
    e.join(&s, Role::Publisher, email).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = e.server.logs();
    assert!(logs.contains("looks like personal data") && logs.contains("Email"), "{logs}");
    assert!(!logs.contains("bo.smith@example.com"));
    // Policy reject: a typed refusal.
    let out =
        conclave(&["project", "set-pii-policy", "--data-dir", &d, "--api-key", e.sdk.api_key(), "--policy", "reject"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        refused(Client::connect(&e.ws, &s, &e.token(&s, Role::Publisher, "card=4111 1111 1111 1111")).await),
        ErrorCode::PersonalData
    );
    e.join(&s, Role::Publisher, "userId=8c1f2e").await;
    // The CLI warns when minting.
    let out = conclave(&["token", "--data-dir", &d, "--session-id", &s, "--data", "tel=+41 79 123 45 67"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("personal data"));
}

#[tokio::test]
async fn clients_get_time_limited_turn_credentials() {
    // SAFETY: a variable no other test reads; the child process inherits it at spawn.
    unsafe { std::env::set_var("CONCLAVE_TEST_TURN_SECRET", "3f1c9a7be2d04c5a8e6b1d2c3f4a5b6c") };
    let e = env(&[
        "--turn-url",
        "turn:turn.example.com:3478?transport=udp",
        "--turn-url",
        "turns:turn.example.com:5349",
        "--turn-secret-env",
        "CONCLAVE_TEST_TURN_SECRET",
        "--turn-ttl",
        "1h",
    ])
    .await;
    let s = e.session(SessionOptions::routed()).await;
    let c = e.join(&s, Role::Publisher, "").await;
    let ServerMessage::Connected { ice_servers, connection_id, .. } = &c.welcome else { panic!("{:?}", c.welcome) };
    assert_eq!(ice_servers.len(), 1);
    let turn = &ice_servers[0];
    assert_eq!(turn.urls, ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]);
    let username = turn.username.as_deref().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, connection_id);
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now() + 3500..=now() + 3700).contains(&expiry), "valid for the TTL");
    let (_, expected) =
        conclave_client::signal::turn_credentials(b"3f1c9a7be2d04c5a8e6b1d2c3f4a5b6c", connection_id, expiry);
    assert_eq!(turn.credential.as_deref(), Some(expected.as_str()), "what coturn's use-auth-secret accepts");
    assert!(!e.server.logs().contains("3f1c9a7be2d04c5a8e6b1d2c3f4a5b6c"), "the TURN secret is never logged");
}

#[tokio::test]
async fn the_rust_sdk_moderates_a_live_session() {
    let e = env(&[]).await;
    let s = e.session(SessionOptions::routed()).await;
    let mut a = e.join(&s, Role::Publisher, "a").await;
    let mut b = e.join(&s, Role::Publisher, "b").await;
    let st = a.publish(PublishOptions::default()).await.unwrap().stream_id;
    e.sdk.signal(&s, None, "notice", "all").await.unwrap();
    b.wait_for(|m| matches!(m, ServerMessage::Signal { data, from: None, .. } if data == "all"), T).await.unwrap();
    e.sdk.signal(&s, Some(&b.connection_id), "dm", "b").await.unwrap();
    b.wait_for(|m| matches!(m, ServerMessage::Signal { data, .. } if data == "b"), T).await.unwrap();
    e.sdk.mute_stream(&s, &st).await.unwrap();
    a.wait_for(|m| matches!(m, ServerMessage::MuteForced { .. }), T).await.unwrap();
    e.sdk.mute_all(&s, &[]).await.unwrap();
    b.wait_for(|m| matches!(m, ServerMessage::MuteAllChanged { active: true }), T).await.unwrap();
    e.sdk.disable_force_mute(&s).await.unwrap();
    b.wait_for(|m| matches!(m, ServerMessage::MuteAllChanged { active: false }), T).await.unwrap();
    assert_eq!(e.sdk.list_streams(&s).await.unwrap()["items"][0]["id"], st.as_str());
    assert_eq!(e.sdk.list_connections(&s).await.unwrap()["count"], 2);
    e.sdk.force_disconnect(&s, &b.connection_id).await.unwrap();
    assert_eq!(b.wait_disconnected(T).await.unwrap(), DisconnectReason::ForceDisconnected);
    assert!(matches!(e.sdk.force_disconnect(&s, "../x").await, Err(conclave_sdk::SdkError::InvalidArgument(_))));
    e.sdk.end_session(&s).await.unwrap();
    assert_eq!(a.wait_disconnected(T).await.unwrap(), DisconnectReason::SessionEnded);
}
