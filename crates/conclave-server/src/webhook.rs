//! Session-monitoring webhooks: `connectionCreated`, `connectionDestroyed`, `streamCreated`
//! and `streamDestroyed`, POSTed to the project's registered callback URLs.
//!
//! Owns: the event bodies (OpenTok's session-monitoring shape), signing, SSRF checks on
//! callback URLs, the outbox (who delivers what after a restart or a node's death), and
//! delivery with retries and back-off, in order per session and target URL.
//! Must not touch: signaling. Events arrive on an unbounded channel, so a receiver that is
//! down never blocks a room.
//!
//! Signing: `Authorization: Bearer <JWT>`, HS256 with the project's API secret (a Vonage
//! application's webhook secret, shown by `application create`), claims
//! `iss` (API key), `ist` = `project`, `iat`, `exp` (iat + 300), `jti` (delivery ID) and
//! `payload_hash` = lowercase hex SHA-256 of the exact body bytes.

use crate::clock;
use crate::cluster::Coordinator;
use crate::signal::hub::HubEvent;
use crate::signal::room::SessionEvent;
use conclave_core::jws::sign_hs256;
use conclave_store::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Which callback targets are allowed. Both default to off: https only, public addresses only.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackPolicy {
    /// Allow loopback, private, link-local and other non-public targets (on-premises setups).
    pub allow_private: bool,
    /// Allow plain `http://` targets.
    pub allow_http: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub policy: CallbackPolicy,
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            policy: CallbackPolicy::default(),
            max_attempts: 10,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The SSRF address policy (the complete IANA special-purpose registries, every embedded
/// IPv4 form unwrapped) is core's; webhooks, storage and every other outbound target use it.
pub use conclave_core::netpolicy::is_public;

/// Checks a callback URL's form: scheme, host, no credentials. Literal IPs are checked here;
/// names are checked again at delivery, after resolution (defeats DNS rebinding).
pub fn check_callback_url(raw: &str, policy: CallbackPolicy) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|_| "callback url is not a valid absolute URL".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err("callback url must be https (plain http needs --allow-http-callbacks)".into()),
        _ => return Err("callback url must be https".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("callback url must not carry credentials".into());
    }
    let host = url.host().ok_or("callback url has no host")?;
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => {
            Some(IpAddr::from([127, 0, 0, 1]))
        }
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && !policy.allow_private
        && !is_public(ip)
    {
        return Err(
            "callback url points at a private, loopback or link-local address (allow with --allow-private-callbacks)"
                .into(),
        );
    }
    Ok(url)
}

/// An outbound URL the server will call on a customer's behalf (an S3 endpoint): the same
/// SSRF rules as callbacks, with the name resolved now and every address checked.
pub async fn check_outbound_url(raw: &str, policy: CallbackPolicy) -> Result<reqwest::Url, String> {
    let url = check_callback_url(raw, policy).map_err(|e| e.replace("callback url", "url"))?;
    resolve_checked(&url, policy).await?;
    Ok(url)
}

async fn resolve_checked(url: &reqwest::Url, policy: CallbackPolicy) -> Result<(String, SocketAddr), String> {
    let host = url.host_str().ok_or("no host")?.trim_matches(|c| c == '[' || c == ']').to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let first = *addrs.first().ok_or_else(|| format!("{host} has no address"))?;
    if !policy.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(format!("{host} resolves to a non-public address"));
    }
    Ok((host, first))
}

/// The JSON body for an event, as OpenTok's session monitoring sends it.
/// The webhook of a session event (`None`: the event has no webhook).
pub fn event_body(e: &HubEvent) -> Option<(&'static str, &'static str, serde_json::Value)> {
    let base = |name: &str| serde_json::json!({"sessionId": e.session_id, "projectId": e.api_key, "event": name, "timestamp": e.at_ms});
    let conn = |c: &conclave_core::signal::ConnectionInfo| serde_json::json!({"id": c.connection_id, "createdAt": c.created_at, "data": c.data});
    let stream = |s: &conclave_core::signal::StreamInfo| serde_json::json!({"id": s.stream_id, "connection": {"id": s.connection_id}, "createdAt": s.created_at, "name": s.name, "videoType": s.video_type});
    match &e.event {
        SessionEvent::ConnectionCreated(c) => {
            let mut b = base("connectionCreated");
            b["connection"] = conn(c);
            Some(("connection", "created", b))
        }
        SessionEvent::ConnectionDestroyed { connection, reason } => {
            let mut b = base("connectionDestroyed");
            b["connection"] = conn(connection);
            b["reason"] = serde_json::to_value(reason).unwrap_or_default();
            Some(("connection", "destroyed", b))
        }
        SessionEvent::StreamCreated(s) => {
            let mut b = base("streamCreated");
            b["stream"] = stream(s);
            Some(("stream", "created", b))
        }
        SessionEvent::StreamDestroyed { stream: s, reason } => {
            let mut b = base("streamDestroyed");
            b["stream"] = stream(s);
            b["reason"] = serde_json::to_value(reason).unwrap_or_default();
            Some(("stream", "destroyed", b))
        }
        SessionEvent::StreamClassesChanged(_) => None,
    }
}

/// Signs `body` for project `api_key` with `secret` (see the module doc).
pub fn sign(api_key: &str, secret: &[u8], body: &[u8], delivery_id: &str) -> String {
    let now = clock::unix_secs();
    let hash = hex::encode(Sha256::digest(body));
    sign_hs256(
        &serde_json::json!({"iss": api_key, "ist": "project", "iat": now, "exp": now + 300, "jti": delivery_id, "payload_hash": hash}),
        secret,
    )
}

struct Job {
    /// The outbox row to delete once delivered or abandoned.
    seq: i64,
    api_key: String,
    url: String,
    body: Vec<u8>,
    event: String,
}

type Queues = Arc<Mutex<HashMap<(String, String), mpsc::UnboundedSender<Job>>>>;

/// Something to POST to a project's registered callbacks of `group`/`event` (compat 6.9 and
/// 7.3): session monitoring from the hub, archive status changes from the archiver.
#[derive(Debug, Clone)]
pub struct Notification {
    pub api_key: String,
    pub session_id: String,
    pub group: &'static str,
    pub event: &'static str,
    /// The event's name in the outbox and logs (`streamCreated`, `archive`, …).
    pub name: &'static str,
    pub body: serde_json::Value,
    pub at_ms: u64,
}

impl Notification {
    /// The session-monitoring webhook of a hub event, if it has one.
    pub fn of(e: &HubEvent) -> Option<Notification> {
        let (group, event, body) = event_body(e)?;
        Some(Notification {
            api_key: e.api_key.clone(),
            session_id: e.session_id.clone(),
            group,
            event,
            name: serde_event_name(group, event),
            body,
            at_ms: e.at_ms,
        })
    }
}

pub type Webhooks = mpsc::UnboundedSender<Notification>;

/// How often a cluster node looks for undelivered webhooks of nodes that are gone.
const TAKEOVER_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the dispatcher; notifications sent to the returned channel are delivered in the
/// background, in order per (target URL, session).
///
/// Every webhook is written to the outbox under this node's ID before its first attempt. At
/// start-up a node replays its own undelivered rows (a previous run's), then takes over the
/// rows of nodes that are no longer alive; in cluster mode it looks for such rows again every
/// few seconds, so a dead node's webhooks are delivered once, by one survivor. Single-node
/// mode owns every row.
pub fn spawn(
    store: Arc<dyn Store>,
    config: WebhookConfig,
    metrics: Arc<crate::metrics::Metrics>,
    cluster: Arc<dyn Coordinator>,
) -> Webhooks {
    let (tx, mut rx) = mpsc::unbounded_channel::<Notification>();
    let queues: Queues = Arc::default();
    let node = cluster.node_id().unwrap_or_default().to_owned();
    tokio::spawn(async move {
        // Webhooks a previous run did not deliver go first, in their original order.
        let mut pending = match store.pending_webhooks(&node).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "loading undelivered webhooks failed");
                Vec::new()
            }
        };
        pending.extend(take_over(&store, cluster.as_ref(), &node).await);
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming undelivered webhooks");
        }
        for r in pending {
            replay(&queues, &store, &config, &metrics, r);
        }
        if cluster.node_id().is_some() {
            let (store, config, metrics, queues, node) =
                (store.clone(), config.clone(), metrics.clone(), queues.clone(), node.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TAKEOVER_INTERVAL);
                loop {
                    tick.tick().await;
                    for r in take_over(&store, cluster.as_ref(), &node).await {
                        replay(&queues, &store, &config, &metrics, r);
                    }
                }
            });
        }
        while let Some(n) = rx.recv().await {
            let callbacks = match store.callbacks(&n.api_key).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "loading callbacks failed; event not delivered");
                    continue;
                }
            };
            let body = serde_json::to_vec(&n.body).expect("serializes");
            for cb in callbacks.into_iter().filter(|c| c.group == n.group && c.event == n.event) {
                let record = conclave_store::OutboxRecord {
                    seq: 0,
                    node_id: node.clone(),
                    api_key: cb.api_key.clone(),
                    session_id: n.session_id.clone(),
                    url: cb.url.clone(),
                    event: n.name.to_owned(),
                    body: body.clone(),
                    created_at_ms: n.at_ms,
                };
                // Written before the first attempt, so a restart cannot lose it.
                let seq = match store.enqueue_webhook(&record).await {
                    Ok(seq) => seq,
                    Err(e) => {
                        tracing::error!(error = %e, "persisting a webhook failed; delivering it from memory only");
                        0
                    }
                };
                let job = Job { seq, api_key: record.api_key, url: record.url, body: record.body, event: record.event };
                enqueue(&queues, &store, &config, &metrics, &n.session_id, job);
            }
        }
    });
    tx
}

/// Queues an outbox row for delivery.
fn replay(
    queues: &Queues,
    store: &Arc<dyn Store>,
    config: &WebhookConfig,
    metrics: &Arc<crate::metrics::Metrics>,
    r: conclave_store::OutboxRecord,
) {
    let job = Job { seq: r.seq, api_key: r.api_key, url: r.url, body: r.body, event: r.event };
    enqueue(queues, store, config, metrics, &r.session_id, job);
}

/// Moves the undelivered webhooks of nodes that are gone to `node`, and returns them. In
/// single-node mode every other row is this node's to deliver (a former cluster's, or rows
/// written before rows had nodes).
async fn take_over(store: &Arc<dyn Store>, cluster: &dyn Coordinator, node: &str) -> Vec<conclave_store::OutboxRecord> {
    let others = match store.webhook_outbox_nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "listing undelivered webhooks failed");
            return Vec::new();
        }
    };
    let mut taken = Vec::new();
    for other in others.into_iter().filter(|n| n != node) {
        if cluster.node_id().is_some() && !other.is_empty() && cluster.is_alive(&other).await {
            continue;
        }
        match store.claim_webhooks(&other, node).await {
            Ok(rows) => {
                if !rows.is_empty() {
                    tracing::info!(count = rows.len(), from = %other, "taking over the undelivered webhooks of a node that is gone");
                }
                taken.extend(rows);
            }
            Err(e) => tracing::error!(error = %e, from = %other, "taking over undelivered webhooks failed"),
        }
    }
    taken
}

fn serde_event_name(group: &str, name: &str) -> &'static str {
    match (group, name) {
        ("connection", "created") => "connectionCreated",
        ("connection", "destroyed") => "connectionDestroyed",
        ("stream", "created") => "streamCreated",
        _ => "streamDestroyed",
    }
}

fn enqueue(
    queues: &Queues,
    store: &Arc<dyn Store>,
    config: &WebhookConfig,
    metrics: &Arc<crate::metrics::Metrics>,
    session_id: &str,
    mut job: Job,
) {
    // Keyed by target URL, not by registration: one receiver sees a session's events in order
    // even when each event type was registered separately.
    let key = (job.url.clone(), session_id.to_owned());
    let mut map = queues.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(q) = map.get(&key) {
        match q.send(job) {
            Ok(()) => return,
            Err(mpsc::error::SendError(j)) => job = j,
        }
    }
    // One worker per (URL, session): deliveries within a session keep their order.
    let (q, mut jobs) = mpsc::unbounded_channel::<Job>();
    q.send(job).expect("receiver alive");
    map.insert(key.clone(), q);
    let (store, config, queues, metrics) = (store.clone(), config.clone(), queues.clone(), metrics.clone());
    tokio::spawn(async move {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), jobs.recv()).await;
            match next {
                Ok(Some(job)) => deliver(&store, &config, &metrics, job).await,
                _ => {
                    let mut map = queues.lock().unwrap_or_else(|p| p.into_inner());
                    // Drain anything that raced in before removing the queue.
                    if jobs.is_empty() {
                        map.remove(&key);
                        return;
                    }
                }
            }
        }
    });
}

async fn deliver(store: &Arc<dyn Store>, config: &WebhookConfig, metrics: &crate::metrics::Metrics, job: Job) {
    deliver_with_retries(store, config, metrics, &job).await;
    if job.seq > 0
        && let Err(e) = store.delete_webhook(job.seq).await
    {
        tracing::error!(error = %e, "removing a delivered webhook from the outbox failed (it may be sent again)");
    }
}

async fn deliver_with_retries(
    store: &Arc<dyn Store>,
    config: &WebhookConfig,
    metrics: &crate::metrics::Metrics,
    job: &Job,
) {
    use crate::metrics::inc;
    let mut delay = config.first_backoff;
    let delivery_id = delivery_id(job.seq);
    for attempt in 1..=config.max_attempts {
        match try_once(store, config, job, &delivery_id, attempt).await {
            Ok(()) => {
                inc(&metrics.counters.webhook_deliveries);
                return;
            }
            Err((reason, permanent)) => {
                if permanent || attempt == config.max_attempts {
                    inc(&metrics.counters.webhook_failures);
                    tracing::error!(url = %job.url, event = %job.event, attempt, %reason, "webhook delivery abandoned");
                    return;
                }
                inc(&metrics.counters.webhook_retries);
                tracing::warn!(url = %job.url, event = %job.event, attempt, %reason, retry_in_ms = delay.as_millis() as u64, "webhook delivery failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(config.max_backoff);
            }
        }
    }
}

/// The `X-Conclave-Delivery` ID (and the signature's `jti`): the outbox row's, so that a
/// webhook sent again after a restart or a takeover carries the same ID and receivers can
/// drop the duplicate; random for a webhook the outbox could not store.
fn delivery_id(seq: i64) -> String {
    if seq > 0 {
        return format!("{seq:032x}");
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("the OS CSPRNG is available");
    hex::encode(id)
}

async fn try_once(
    store: &Arc<dyn Store>,
    config: &WebhookConfig,
    job: &Job,
    delivery_id: &str,
    attempt: u32,
) -> Result<(), (String, bool)> {
    let url = check_callback_url(&job.url, config.policy).map_err(|e| (e, true))?;
    let (host, addr) = resolve_checked(&url, config.policy).await.map_err(|e| (e, false))?;
    let project = store
        .project(&job.api_key)
        .await
        .map_err(|e| (e.to_string(), false))?
        .ok_or(("project is gone".to_owned(), true))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .resolve(&host, addr)
        .build()
        .map_err(|e| (e.to_string(), true))?;
    let resp = client
        .post(url)
        .header("Content-Type", "application/json")
        .header(
            "Authorization",
            format!("Bearer {}", sign(&job.api_key, project.secret.as_bytes(), &job.body, delivery_id)),
        )
        .header("X-Conclave-Delivery", delivery_id)
        .header("X-Conclave-Attempt", attempt.to_string())
        .body(job.body.clone())
        .send()
        .await
        .map_err(|e| (format!("request failed: {e}"), false))?;
    if resp.status().is_success() { Ok(()) } else { Err((format!("receiver answered {}", resp.status()), false)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_are_ssrf_safe_by_default() {
        let strict = CallbackPolicy::default();
        assert!(check_callback_url("https://hooks.example.com/x", strict).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:8080/x",
            "https://10.0.0.5/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::7f00:1]/x",
            "https://[2002:7f00:1::]/x",
            "https://[fec0::1]/x",
            "https://192.0.0.8/x",
            "https://198.18.0.1/x",
            "https://user:pw@hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_callback_url(bad, strict).is_err(), "{bad}");
        }
        let onprem = CallbackPolicy { allow_private: true, allow_http: true };
        assert!(check_callback_url("http://127.0.0.1:9000/hook", onprem).is_ok());
    }

    #[test]
    fn signatures_bind_the_body() {
        let t = sign("1", b"secret", b"{\"a\":1}", "d1");
        let j = conclave_core::jws::UnverifiedJws::split(&t).unwrap();
        assert!(j.signature_matches(b"secret"));
        let claims: serde_json::Value = serde_json::from_slice(&j.payload).unwrap();
        assert_eq!(claims["payload_hash"], hex::encode(Sha256::digest(b"{\"a\":1}")));
        assert_eq!(claims["jti"], "d1");
    }
}
