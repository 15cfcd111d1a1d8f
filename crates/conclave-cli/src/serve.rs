//! `conclave serve`.

use crate::{DataDirArg, open_store};
use conclave_server::listen::{ServeConfig, serve, shutdown_signal};
use conclave_server::signal::hub::{Hub, SignalConfig};
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

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(TlsSource::Files { cert, key }),
        (_, _, true) => Some(TlsSource::SelfSigned),
        _ => None,
    };
    crate::raise_fd_limit();
    // Refuse a bad transport before touching the data directory.
    conclave_server::listen::choose_transport(&args.listen, tls.is_some(), args.insecure_http)?;
    let store: Arc<dyn conclave_store::Store> = Arc::new(open_store(&args.data.data_dir).await?);
    let signal = SignalConfig { heartbeat: args.signal_heartbeat, reconnect_grace: args.reconnect_grace, ..SignalConfig::default() };
    let policy = args.callbacks.policy();
    let webhooks = webhook::spawn(store.clone(), WebhookConfig { policy, ..WebhookConfig::default() });
    let hub = Hub::new(store.clone(), signal, Some(webhooks));
    let _sweeper = hub.spawn_sweeper();
    let drain_hub = hub.clone();
    let rate = |per_sec: u32, burst_factor: f64| Rate { per_sec, burst: (f64::from(per_sec) * burst_factor) as u32 };
    let limiters = Arc::new(Limiters::new(RateLimits {
        rest_per_ip: rate(args.rest_rate_per_ip, 2.0),
        rest_per_key: rate(args.rest_rate_per_key, 2.0),
        connect_per_ip: rate(args.connect_rate_per_ip, 2.5),
    }));
    let state = AppState { store, hub, limits: Limits { max_body_bytes: args.max_body_bytes }, callback_policy: policy, limiters };
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
