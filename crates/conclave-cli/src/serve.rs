//! `conclave serve`.

use crate::DataDirArg;
use conclave_server::listen::{ServeConfig, serve, shutdown_signal};
use conclave_server::metrics::{Cidr, Metrics};
use conclave_server::ratelimit::{Limiters, Rate, RateLimits};
use conclave_server::signal::hub::{Hub, SignalConfig, TurnConfig};
use conclave_server::tls::TlsSource;
use conclave_server::webhook::{self, CallbackPolicy, WebhookConfig};
use conclave_server::{AppState, Limits};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Address to listen on; repeat for several. Plain HTTP is allowed only on loopback.
    #[arg(long, default_value = "127.0.0.1:4000", env = "CONCLAVE_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate kept in the data directory (development).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Allow plain HTTP on non-loopback addresses (only behind a TLS-terminating proxy).
    #[arg(long)]
    insecure_http: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_body_bytes: usize,
    /// Signaling heartbeat: the server pings every interval and drops a socket silent for two.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "15s")]
    signal_heartbeat: Duration,
    /// How long a dropped connection keeps its seat and ID, waiting for a resume.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "10s")]
    reconnect_grace: Duration,
    #[command(flatten)]
    callbacks: CallbackPolicyArgs,
    /// REST requests per second per source IP (0 = unlimited); bursts of twice that.
    #[arg(long, default_value_t = 1000)]
    rest_rate_per_ip: u32,
    /// REST requests per second per API key (0 = unlimited); bursts of twice that.
    #[arg(long, default_value_t = 1000)]
    rest_rate_per_key: u32,
    /// Signaling connects per second per source IP (0 = unlimited); bursts of 2.5 times that.
    #[arg(long, default_value_t = 200)]
    connect_rate_per_ip: u32,
    /// Addresses or networks (CIDR) that may read /metrics; repeat or comma-separate.
    /// Without it, /metrics answers 403 to everyone.
    #[arg(long, value_delimiter = ',', env = "CONCLAVE_METRICS_ALLOW")]
    metrics_allow: Vec<Cidr>,
    /// Open HTTP and WebSocket connections one source address may hold (0 = unlimited).
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Deadline for a request's headers, for a new connection's first request, and the idle
    /// limit of a kept-alive connection (slowloris).
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "10s")]
    header_read_timeout: Duration,
    /// Below this much free space on the data directory's disk (bytes, or with a K/M/G/T
    /// suffix) the node reports not ready and refuses writes with 507.
    #[arg(long, value_parser = parse_bytes, default_value = "64M")]
    min_free_disk: u64,
    /// Development mode: allows a self-signed certificate on non-loopback addresses.
    #[arg(long)]
    dev: bool,
    /// The address advertised to browsers as the SFU's host candidate, and bound for media.
    #[arg(long, default_value = "127.0.0.1", env = "CONCLAVE_RTC_HOST")]
    rtc_host: std::net::IpAddr,
    /// The first UDP port for routed media: media worker i binds this port + i (0: each
    /// picks a free one).
    #[arg(long, default_value_t = 0, env = "CONCLAVE_RTC_PORT")]
    rtc_port: u16,
    /// Media worker threads, each with its own SFU and UDP port; a session's media stays on
    /// one worker (default: one per core).
    #[arg(long, env = "CONCLAVE_MEDIA_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    media_workers: Option<u16>,
    /// How the SFU forwards media: as RTP packets rewritten per subscriber (the default; the
    /// recording and broadcast taps reassemble frames themselves), or as whole frames
    /// (str0m's frame mode, the default before issue 16).
    #[arg(long, value_enum, default_value = "rtp", env = "CONCLAVE_FORWARDING")]
    forwarding: Forwarding,
    /// A TURN server URL handed to clients (repeat for several), e.g.
    /// `turn:turn.example.com:3478?transport=udp`. Needs --turn-secret-env.
    #[arg(long = "turn-url", requires = "turn_secret_env")]
    turn_urls: Vec<String>,
    /// Environment variable holding the TURN server's `static-auth-secret` (coturn
    /// `use-auth-secret`); clients get credentials valid for --turn-ttl.
    #[arg(long)]
    turn_secret_env: Option<String>,
    #[arg(long, value_parser = crate::duration::parse, default_value = "12h")]
    turn_ttl: Duration,
    /// Serve the demo app at /demo/ (login page, meeting page, browser SDK). Passwords come
    /// from CONCLAVE_DEMO_PASSWORD and CONCLAVE_DEMO_MODERATOR_PASSWORD, or are generated and
    /// printed once at start.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    archive: ArchiveArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Cluster mode: several nodes on one PostgreSQL database and one Redis (docs/cluster.md).
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Redis for the node registry and session placement, e.g. redis://10.0.0.5:6379.
    /// Needs --node-id and --advertise-url, and a database every node shares.
    #[arg(long, env = "CONCLAVE_REDIS_URL", requires_all = ["node_id", "advertise_url"])]
    redis_url: Option<String>,
    /// On SIGTERM, keep serving this long as a draining node before closing sockets: new
    /// sessions go to other nodes at once, and load balancers see it leave first.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "0s")]
    drain_delay: Duration,
    /// This node's unique name in the cluster.
    #[arg(long, env = "CONCLAVE_NODE_ID")]
    node_id: Option<String>,
    /// Base URL other nodes and redirected clients reach this node at
    /// (e.g. `https://node-a.example.com:4000`). With port 0 listening, the bound port is used.
    #[arg(long, env = "CONCLAVE_ADVERTISE_URL")]
    advertise_url: Option<String>,
}

/// Archiving: retention, automatic stops, download URLs and alert email.
#[derive(clap::Args)]
pub struct ArchiveArgs {
    /// How long an archive kept in the fallback store (`available`) stays downloadable,
    /// counted from its creation.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "72h")]
    archive_retention: Duration,
    /// A running archive with no published stream for this long stops by itself.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "60s")]
    archive_idle_stop: Duration,
    /// Longest recording; the archive stops with reason "maximum duration exceeded".
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "4h")]
    archive_max_duration: Duration,
    /// Upload retries of archives kept in the fallback store: the first delay, optionally the
    /// longest (`30s,30m`: 30 s doubling to 30 min).
    #[arg(long, value_parser = conclave_server::archive::UploadRetry::parse, env = "CONCLAVE_ARCHIVE_UPLOAD_RETRY")]
    archive_upload_retry: Option<conclave_server::archive::UploadRetry>,
    /// How often expired fallback copies are swept.
    #[arg(long, value_parser = crate::duration::parse_ms, default_value = "30s")]
    archive_sweep_every: Duration,
    /// Base URL of this server as clients reach it (for signed archive download URLs);
    /// defaults to the first listening address.
    #[arg(long, env = "CONCLAVE_PUBLIC_URL")]
    public_url: Option<String>,
    /// SMTP relay for archive alerts (upload failures). Without it, alerts are logged only.
    #[arg(long, env = "CONCLAVE_SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, default_value_t = 587)]
    smtp_port: u16,
    /// `starttls` (default), `tls`, or `none` (only for a relay on loopback).
    #[arg(long, default_value = "starttls")]
    smtp_security: String,
    #[arg(long, env = "CONCLAVE_SMTP_USER")]
    smtp_user: Option<String>,
    /// Environment variable holding the SMTP password.
    #[arg(long)]
    smtp_password_env: Option<String>,
    #[arg(long, default_value = "conclave@localhost")]
    smtp_from: String,
    /// Alert recipients (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    smtp_to: Vec<String>,
    /// Broadcasts (live HLS/RTMP compositions) this node runs at once; a start beyond it is
    /// answered 429. Each costs about one core at 1280x720 (see docs/broadcast.md).
    #[arg(long, env = "CONCLAVE_MAX_BROADCASTS", default_value_t = 2)]
    max_broadcasts: usize,
    /// Audio Connector connections this node runs at once.
    #[arg(long, env = "CONCLAVE_MAX_AUDIO_CONNECTIONS", default_value_t = 20)]
    max_audio_connections: usize,
}

impl ArchiveArgs {
    fn config(&self, data_dir: &std::path::Path) -> anyhow::Result<conclave_server::archive::ArchiveConfig> {
        let mut c = conclave_server::archive::ArchiveConfig::new(data_dir, self.public_url.clone().unwrap_or_default());
        c.retention = self.archive_retention;
        c.idle_stop = self.archive_idle_stop;
        c.max_duration = self.archive_max_duration;
        c.sweep_every = self.archive_sweep_every;
        if let Some(r) = self.archive_upload_retry {
            c.upload_retry = r;
        }
        if let Some(host) = &self.smtp_host {
            anyhow::ensure!(!self.smtp_to.is_empty(), "--smtp-host needs at least one --smtp-to");
            anyhow::ensure!(
                matches!(self.smtp_security.as_str(), "starttls" | "tls" | "none"),
                "--smtp-security must be starttls, tls or none"
            );
            if self.smtp_security == "none" && !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
                anyhow::bail!("--smtp-security none sends mail in clear; it is allowed only for a relay on loopback");
            }
            let password = match &self.smtp_password_env {
                Some(var) => Some(zeroize::Zeroizing::new(
                    std::env::var(var)
                        .map_err(|_| anyhow::anyhow!("environment variable {var} (the SMTP password) is not set"))?,
                )),
                None => None,
            };
            c.smtp = Some(conclave_server::archive::SmtpConfig {
                host: host.clone(),
                port: self.smtp_port,
                security: self.smtp_security.clone(),
                username: self.smtp_user.clone(),
                password,
                from: self.smtp_from.clone(),
                to: self.smtp_to.clone(),
            });
        }
        Ok(c)
    }
}

/// Where webhooks may go. Off by default: https to public addresses only (SSRF-safe).
#[derive(clap::Args, Clone, Copy)]
pub struct CallbackPolicyArgs {
    /// Allow callback URLs on loopback, private or link-local addresses (on-premises).
    #[arg(long, env = "CONCLAVE_ALLOW_PRIVATE_CALLBACKS")]
    pub allow_private_callbacks: bool,
    /// Allow plain http:// callback URLs.
    #[arg(long, env = "CONCLAVE_ALLOW_HTTP_CALLBACKS")]
    pub allow_http_callbacks: bool,
}

impl CallbackPolicyArgs {
    pub fn policy(self) -> CallbackPolicy {
        CallbackPolicy { allow_private: self.allow_private_callbacks, allow_http: self.allow_http_callbacks }
    }
}

/// The demo: the data directory's first project (created if there is none) and two passwords.
async fn demo_app(store: &dyn conclave_store::Store, tls: bool) -> anyhow::Result<Arc<conclave_server::demo::Demo>> {
    use conclave_server::demo::{Demo, DemoConfig};
    let api_key = match store.list_projects().await?.first() {
        Some(p) => p.api_key.clone(),
        None => conclave_server::provision::create_project(store, "demo", None).await?.api_key,
    };
    // A password from the environment is the operator's: it must be long enough and is never
    // printed. A generated one (64 random bits) is printed once, since nobody else knows it.
    let mut generated = Vec::new();
    let mut password = |var: &str, who: &'static str| -> anyhow::Result<zeroize::Zeroizing<String>> {
        match std::env::var(var) {
            Ok(p) => {
                anyhow::ensure!(
                    p.chars().count() >= conclave_server::demo::MIN_PASSWORD_CHARS,
                    "{var} is too short: use at least {} characters",
                    conclave_server::demo::MIN_PASSWORD_CHARS
                );
                Ok(zeroize::Zeroizing::new(p))
            }
            Err(_) => {
                let p: zeroize::Zeroizing<String> =
                    conclave_server::provision::generate_secret()[..16].to_owned().into();
                generated.push(format!("{who} password {}", p.as_str()));
                Ok(p)
            }
        }
    };
    let password_1 = password("CONCLAVE_DEMO_PASSWORD", "participant")?;
    let moderator_password = password("CONCLAVE_DEMO_MODERATOR_PASSWORD", "moderator")?;
    let password = password_1;
    anyhow::ensure!(password.as_str() != moderator_password.as_str(), "the demo and moderator passwords must differ");
    if !generated.is_empty() {
        println!("demo: {}", generated.join(" · "));
    }
    Ok(Demo::new(DemoConfig {
        api_key,
        password,
        moderator_password,
        default_mode: conclave_core::wire::MediaMode::Routed,
        secure_cookie: tls,
    }))
}

/// Configurations that would quietly weaken the deployment are refused, with the fix.
fn refuse_weak_configuration(args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(everything) = args.metrics_allow.iter().find(|c| c.is_everything()) {
        anyhow::bail!(
            "--metrics-allow {everything:?} would open /metrics to every address; list the monitoring hosts or networks instead (e.g. --metrics-allow 10.0.5.7,10.0.6.0/24)"
        );
    }
    if args.tls_self_signed && !args.dev && args.listen.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "refusing a self-signed certificate on a non-loopback address outside development: clients cannot verify it. \
             Use --tls-cert FILE --tls-key FILE with a certificate from your CA (or ACME), or add --dev for a development setup"
        );
    }
    Ok(())
}

/// `64M`, `2G`, `1024`: a byte count with an optional binary suffix.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size such as 64M"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return Err(format!("{s:?}: the unit must be K, M, G, T or P")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// The data directory holds recordings, the database and the master key: owner only. A
/// directory created by hand with looser modes is tightened; everything this process creates
/// is 0600/0700 (umask 077, set in `main`).
fn restrict_permissions(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "data directory was readable by others; setting it to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    refuse_weak_configuration(&args)?;
    let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(TlsSource::Files { cert, key }),
        (_, _, true) => Some(TlsSource::SelfSigned),
        _ => None,
    };
    crate::raise_fd_limit();
    // Refuse a bad transport before touching the data directory.
    conclave_server::listen::choose_transport(&args.listen, tls.is_some(), args.insecure_http)?;
    // The master key is read once: it opens the store and signs archive download URLs (a key
    // derived from it, so URLs verify on every node that shares it).
    let master = crate::master_key(&args.data.data_dir)?;
    // One server per data directory (a second one's crash recovery would finalize and delete
    // recordings this one is still writing). Held until the process ends.
    let node = args.cluster.redis_url.as_ref().and(args.cluster.node_id.as_deref());
    let _data_dir_lock = conclave_server::datadir::lock(&args.data.data_dir, node)?;
    restrict_permissions(&args.data.data_dir)?;
    let url_key = *master.derive_subkey("archive-download-urls");
    let store: Arc<dyn conclave_store::Store> = args.data.open_store_with(master).await?;
    let turn = match &args.turn_secret_env {
        Some(var) => {
            let secret = std::env::var(var)
                .map_err(|_| anyhow::anyhow!("environment variable {var} (the TURN secret) is not set"))?;
            anyhow::ensure!(
                secret.len() >= 16,
                "the TURN secret in {var} is too short (use 32 random bytes, e.g. openssl rand -hex 32)"
            );
            anyhow::ensure!(!args.turn_urls.is_empty(), "--turn-secret-env needs at least one --turn-url");
            Some(TurnConfig {
                urls: args.turn_urls.clone(),
                secret: zeroize::Zeroizing::new(secret),
                ttl: args.turn_ttl,
            })
        }
        None => None,
    };
    let signal = SignalConfig {
        heartbeat: args.signal_heartbeat,
        reconnect_grace: args.reconnect_grace,
        turn,
        ..SignalConfig::default()
    };
    let policy = args.callbacks.policy();
    let metrics = Arc::new(Metrics::new(args.metrics_allow.clone()));
    let workers = args.media_workers.map_or_else(conclave_server::media::pool::default_workers, usize::from);
    let rtp_forwarding = matches!(args.forwarding, Forwarding::Rtp);
    let media = conclave_server::media::MediaPool::start(
        SocketAddr::new(args.rtc_host, args.rtc_port),
        workers,
        rtp_forwarding,
        metrics.clone(),
    )?;
    let addresses: Vec<String> = media.addresses().iter().map(|a| format!("udp://{a}")).collect();
    println!("media on {}", addresses.join(" "));
    let (hub_events, mut hub_rx) = tokio::sync::mpsc::unbounded_channel();
    let hub = Hub::new(store.clone(), signal, Some(hub_events), metrics.clone(), Some(media.clone()));
    let _sweeper = hub.spawn_sweeper();
    let _media_events = hub.spawn_media_events();
    let drain_hub = hub.clone();
    let cluster: Arc<dyn conclave_server::cluster::Coordinator> = match &args.cluster.redis_url {
        Some(url) => {
            let id = args.cluster.node_id.clone().expect("clap requires it");
            let advertise = args.cluster.advertise_url.clone().expect("clap requires it");
            anyhow::ensure!(
                !id.is_empty()
                    && id.len() <= 64
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "--node-id must be 1-64 letters, digits, - or _"
            );
            let c = conclave_server::cluster::redis::RedisCluster::connect(url, &id, &advertise)
                .await
                .map_err(anyhow::Error::msg)?;
            let probe = conclave_server::cluster::LoadProbe::new(&hub, metrics.clone());
            c.spawn_heartbeat(move || probe.sample());
            println!("cluster node {id} advertised at {advertise}");
            c
        }
        None => Arc::new(conclave_server::cluster::SingleNode),
    };
    let webhooks = webhook::spawn(
        store.clone(),
        WebhookConfig { policy, ..WebhookConfig::default() },
        metrics.clone(),
        cluster.clone(),
    );
    let drain_cluster = cluster.clone();
    let drain_delay = args.cluster.drain_delay;
    let mut archive_config = args.archive.config(&args.data.data_dir)?;
    archive_config.url_key = Some(url_key);
    archive_config.outbound = policy;
    let archiver = conclave_server::archive::Archiver::new(
        store.clone(),
        hub.clone(),
        Some(media.clone()),
        archive_config,
        Some(webhooks.clone()),
        metrics.clone(),
        cluster.clone(),
    )?;
    let mut broadcast_config = conclave_server::broadcast::BroadcastConfig::new(&args.data.data_dir);
    broadcast_config.outbound = policy;
    broadcast_config.public_url = args.archive.public_url.clone().unwrap_or_default();
    broadcast_config.max_live = args.archive.max_broadcasts;
    broadcast_config.max_connectors = args.archive.max_audio_connections;
    broadcast_config.node_id = cluster.node_id().map(str::to_owned);
    let broadcaster = conclave_server::broadcast::Broadcaster::new(
        store.clone(),
        hub.clone(),
        Some(media),
        broadcast_config,
        Some(webhooks.clone()),
    )?;
    broadcaster.spawn_timers();
    // Session events feed the webhooks, the archiver and the broadcasts, in order.
    let events_archiver = archiver.clone();
    let events_broadcaster = broadcaster.clone();
    tokio::spawn(async move {
        while let Some(e) = hub_rx.recv().await {
            if let Some(n) = webhook::Notification::of(&e) {
                let _ = webhooks.send(n);
            }
            events_archiver.on_hub_event(&e).await;
            events_broadcaster.on_hub_event(&e).await;
        }
    });
    let drain_broadcaster = broadcaster.clone();
    archiver.recover().await;
    archiver.spawn_timers();
    let drain_archiver = archiver.clone();
    let rate = |per_sec: u32, burst_factor: f64| Rate { per_sec, burst: (f64::from(per_sec) * burst_factor) as u32 };
    let limiters = Arc::new(Limiters::new(RateLimits {
        rest_per_ip: rate(args.rest_rate_per_ip, 2.0),
        rest_per_key: rate(args.rest_rate_per_key, 2.0),
        connect_per_ip: rate(args.connect_rate_per_ip, 2.5),
    }));
    let demo = if args.demo { Some(demo_app(store.as_ref(), tls.is_some()).await?) } else { None };
    let config_dir = args.data.data_dir.clone();
    let state = AppState {
        demo,
        store,
        hub,
        archiver: Some(archiver),
        broadcaster: Some(broadcaster),
        cluster,
        http: reqwest::Client::new(),
        tls: tls.is_some(),
        disk: Arc::new(conclave_server::disk::DiskGuard::new(config_dir.clone(), args.min_free_disk)),
        limits: Limits { max_body_bytes: args.max_body_bytes },
        callback_policy: policy,
        limiters,
        metrics,
    };
    let config = ServeConfig {
        listen: args.listen,
        tls,
        insecure_http: args.insecure_http,
        data_dir: args.data.data_dir,
        shutdown_grace: Duration::from_secs(10),
        max_connections_per_ip: args.max_connections_per_ip,
        header_read_timeout: args.header_read_timeout,
    };
    let shutdown = async move {
        shutdown_signal().await;
        // No new sessions are placed here from now on.
        drain_cluster.drain();
        if !drain_delay.is_zero() {
            tracing::info!(delay_ms = drain_delay.as_millis() as u64, "draining: new sessions go to other nodes");
            tokio::time::sleep(drain_delay).await;
        }
        drain_hub.drain();
        // Broadcasts end their playlists; recordings stop, then each is packaged and
        // uploaded (or kept) before exit.
        drain_broadcaster.drain().await;
        drain_archiver.drain().await;
    };
    serve(config, state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `--forwarding`: the SFU's forwarding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Forwarding {
    /// Whole frames, depacketized and repacketized by str0m.
    Frames,
    /// RTP packets, rewritten per subscriber (`Sfu::set_rtp_forwarding`; the default).
    Rtp,
}
