//! `conclave bench signal`'s OpenTok.js half: what an idle connection of the OpenTok.js wire
//! protocol (Rumor over WebSocket) costs the server, next to protocol v1.
//!
//! Owns: a minimal Rumor client that joins the way OpenTok.js does (CONNECT, SUBSCRIBE, the
//! `create connection` request with the token) and then only answers liveness, as an idle
//! browser tab would (a PING every 2 s). Written here, with core's codec, because the real
//! client is a browser library. Must not touch: the server's internals (it measures RSS from
//! outside).

use conclave_core::opentok::raptor::{ClientRaptor, SessionPath};
use conclave_core::opentok::rumor::{Limits, RumorFrame};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    conclave_core::ids::uuid_v4(b)
}

/// One idle OpenTok.js-protocol participant: joined, then pinging until dropped.
pub struct IdleParticipant {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for IdleParticipant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Joins `session` on `base` (http://host:port) as OpenTok.js would.
pub async fn join(base: &str, api_key: &str, session: &str, token: &str) -> anyhow::Result<IdleParticipant> {
    let url = format!("{}/rumorwebsocketsv2?socketId={}&attempt={}", base.replacen("http", "ws", 1), uuid(), uuid());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    let conn = uuid();
    let send = |f: RumorFrame| Message::Binary(f.encode().expect("small frame").into());
    ws.send(send(RumorFrame::connect(&conn, &uuid(), "symphony.conclave"))).await?;
    let path = SessionPath::new(api_key, session);
    ws.send(send(RumorFrame::subscribe(vec![path.address()]))).await?;
    let create = format!(
        r#"{{"method":"create","uri":"/v2/partner/{api_key}/session/{session}/connection/{conn}","content":{{"userAgent":"conclave-bench","clientVersion":"js-2.35.2","capabilities":["forceMute"]}}}}"#
    );
    ClientRaptor::parse(&create)?;
    let txn = uuid();
    ws.send(send(RumorFrame::client_message("symphony.conclave", &txn, &conn, Some(token), create))).await?;
    let limits = Limits::format_only(1 << 20);
    loop {
        let Some(msg) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await? else {
            anyhow::bail!("the server closed the socket during the join");
        };
        let Message::Binary(bytes) = msg? else { continue };
        let f = RumorFrame::decode(&bytes, &limits)?;
        if f.transaction_id() == Some(txn.as_str()) && f.status_code().is_some() {
            anyhow::ensure!(f.is_success(), "join refused: {}", f.body);
            break;
        }
    }
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => if ws.send(send(RumorFrame::ping())).await.is_err() { return },
                m = ws.next() => if !matches!(m, Some(Ok(_))) { return },
            }
        }
    });
    Ok(IdleParticipant { task })
}
