//! `conclave serve`.

use crate::{DataDirArg, open_store};
use conclave_server::listen::{ServeConfig, serve, shutdown_signal};
use conclave_server::signal::hub::{Hub, SignalConfig, TurnConfig};
use conclave_server::metrics::{Cidr, Metrics};
use conclave_server::ratelimit::{Limiters, Rate, RateLimits};
use conclave_server::webhook::{self, CallbackPolicy, WebhookConfig};
use conclave_server::tls::TlsSource;
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
    /// Development mode: allows a self-signed certificate on non-loopback addresses.
    #[arg(long)]
    dev: bool,
    /// The address advertised to browsers as the SFU's host candidate, and bound for media.
    #[arg(long, default_value = "127.0.0.1", env = "CONCLAVE_RTC_HOST")]
    rtc_host: std::net::IpAddr,
    /// The one UDP port for all routed media (0 picks a free one).
    #[arg(long, default_value_t = 0, env = "CONCLAVE_RTC_PORT")]
    rtc_port: u16,
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
    let password = |var: &str| -> zeroize::Zeroizing<String> {
        std::env::var(var).map(zeroize::Zeroizing::new).unwrap_or_else(|_| conclave_server::provision::generate_secret()[..12].to_owned().into())
    };
    let (password, moderator_password) = (password("CONCLAVE_DEMO_PASSWORD"), password("CONCLAVE_DEMO_MODERATOR_PASSWORD"));
    anyhow::ensure!(password.as_str() != moderator_password.as_str(), "the demo and moderator passwords must differ");
    println!("demo: participant password {} · moderator password {}", password.as_str(), moderator_password.as_str());
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
        anyhow::bail!("--metrics-allow {everything:?} would open /metrics to every address; list the monitoring hosts or networks instead (e.g. --metrics-allow 10.0.5.7,10.0.6.0/24)");
    }
    if args.tls_self_signed && !args.dev && args.listen.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "refusing a self-signed certificate on a non-loopback address outside development: clients cannot verify it. \
             Use --tls-cert FILE --tls-key FILE with a certificate from your CA (or ACME), or add --dev for a development setup"
        );
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
    let store: Arc<dyn conclave_store::Store> = Arc::new(open_store(&args.data.data_dir).await?);
    let turn = match &args.turn_secret_env {
        Some(var) => {
            let secret = std::env::var(var).map_err(|_| anyhow::anyhow!("environment variable {var} (the TURN secret) is not set"))?;
            anyhow::ensure!(secret.len() >= 16, "the TURN secret in {var} is too short (use 32 random bytes, e.g. openssl rand -hex 32)");
            anyhow::ensure!(!args.turn_urls.is_empty(), "--turn-secret-env needs at least one --turn-url");
            Some(TurnConfig { urls: args.turn_urls.clone(), secret: zeroize::Zeroizing::new(secret), ttl: args.turn_ttl })
        }
        None => None,
    };
    let signal = SignalConfig { heartbeat: args.signal_heartbeat, reconnect_grace: args.reconnect_grace, turn, ..SignalConfig::default() };
    let policy = args.callbacks.policy();
    let metrics = Arc::new(Metrics::new(args.metrics_allow.clone()));
    let webhooks = webhook::spawn(store.clone(), WebhookConfig { policy, ..WebhookConfig::default() }, metrics.clone());
    let media = conclave_server::media::start(SocketAddr::new(args.rtc_host, args.rtc_port), metrics.clone()).await?;
    println!("media on udp://{}", media.address);
    let hub = Hub::new(store.clone(), signal, Some(webhooks), metrics.clone(), Some(media));
    let _sweeper = hub.spawn_sweeper();
    let drain_hub = hub.clone();
    let rate = |per_sec: u32, burst_factor: f64| Rate { per_sec, burst: (f64::from(per_sec) * burst_factor) as u32 };
    let limiters = Arc::new(Limiters::new(RateLimits {
        rest_per_ip: rate(args.rest_rate_per_ip, 2.0),
        rest_per_key: rate(args.rest_rate_per_key, 2.0),
        connect_per_ip: rate(args.connect_rate_per_ip, 2.5),
    }));
    let demo = if args.demo { Some(demo_app(store.as_ref(), tls.is_some()).await?) } else { None };
    let state = AppState { demo, store, hub, limits: Limits { max_body_bytes: args.max_body_bytes }, callback_policy: policy, limiters, metrics };
    let config = ServeConfig {
        listen: args.listen,
        tls,
        insecure_http: args.insecure_http,
        data_dir: args.data.data_dir,
        shutdown_grace: Duration::from_secs(10),
    };
    let shutdown = async move {
        shutdown_signal().await;
        drain_hub.drain();
    };
    serve(config, state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
