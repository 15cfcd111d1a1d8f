//! Listeners: the rule that REST is never served in clear over a network, and serving with
//! graceful shutdown.
//!
//! Policy: TLS when a certificate is configured (files or self-signed); otherwise plain HTTP
//! only if every listen address is loopback, or with the explicit `insecure_http` opt-in,
//! which logs a loud warning. Anything else refuses to start with a message saying how.

use crate::conn_limit::PerIpConnections;
use crate::tls::{TlsSource, rustls_config};
use crate::{AppState, api};
use anyhow::{Result, bail};
use axum::ServiceExt;
use axum_server::tls_rustls::RustlsAcceptor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct ServeConfig {
    pub listen: Vec<SocketAddr>,
    pub tls: Option<TlsSource>,
    pub insecure_http: bool,
    pub data_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// Open connections one source address may hold (`0` = no limit).
    pub max_connections_per_ip: usize,
    /// A request's headers (and a new connection's first request) must arrive within this,
    /// and a kept-alive connection may idle this long between requests.
    pub header_read_timeout: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Transport {
    Tls,
    PlainLoopback,
    PlainInsecure,
}

/// Decides the transport, or explains why the configuration is refused.
pub fn choose_transport(listen: &[SocketAddr], tls: bool, insecure_http: bool) -> Result<Transport> {
    if listen.is_empty() {
        bail!("no listen address given (use --listen 127.0.0.1:4000)");
    }
    if tls {
        return Ok(Transport::Tls);
    }
    if listen.iter().all(|a| a.ip().is_loopback()) {
        return Ok(Transport::PlainLoopback);
    }
    if insecure_http {
        return Ok(Transport::PlainInsecure);
    }
    let public: Vec<String> = listen.iter().filter(|a| !a.ip().is_loopback()).map(ToString::to_string).collect();
    bail!(
        "refusing to serve the REST API over plain HTTP on non-loopback address(es) {}: API credentials and tokens would cross the network in clear. \
         Use --tls-cert FILE --tls-key FILE (production), --tls-self-signed (development), \
         or --insecure-http if a TLS-terminating proxy sits in front",
        public.join(", ")
    )
}

/// Serves until `shutdown` resolves, then drains in-flight requests for `shutdown_grace`.
pub async fn serve(
    config: ServeConfig,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let transport = choose_transport(&config.listen, config.tls.is_some(), config.insecure_http)?;
    let tls = match &config.tls {
        Some(source) => Some(rustls_config(source, &config.data_dir).await?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut servers = tokio::task::JoinSet::new();
    let mut handles = Vec::new();
    // Slowloris: one cap on open connections per source address across every listener, a
    // deadline for the first request and for each request's headers (also the keep-alive
    // idle limit), and the TLS handshake's own 10 s deadline.
    let per_ip = PerIpConnections::new(config.max_connections_per_ip, state.metrics.clone());
    let timeout = config.header_read_timeout;
    for addr in &config.listen {
        let app = api::service(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        handles.push(handle.clone());
        let addr = *addr;
        match &tls {
            Some(tls) => {
                let acceptor = RustlsAcceptor::new(tls.clone()).acceptor(per_ip.clone());
                let mut server =
                    axum_server::bind(addr).acceptor(acceptor).handle(handle.clone()).first_request_timeout(timeout);
                server.http_builder().http1().header_read_timeout(timeout);
                servers.spawn(async move { server.serve(app).await });
            }
            None => {
                let mut server = axum_server::bind(addr)
                    .acceptor(per_ip.clone())
                    .handle(handle.clone())
                    .first_request_timeout(timeout);
                server.http_builder().http1().header_read_timeout(timeout);
                servers.spawn(async move { server.serve(app).await });
                if transport == Transport::PlainInsecure && !addr.ip().is_loopback() {
                    tracing::warn!(%addr, "!!! SERVING THE REST API OVER PLAIN HTTP ON A NETWORK ADDRESS (--insecure-http). Credentials cross the network in clear unless a TLS proxy terminates in front. !!!");
                }
            }
        }
        // The bound address (port 0 picks a free one); printed on stdout for scripts and tests.
        match handle.listening().await {
            Some(bound) => {
                tracing::info!(addr = %bound, scheme, "listening");
                println!("listening on {scheme}://{bound}");
                if let Some(a) = &state.archiver {
                    a.default_public_url(&format!("{scheme}://{bound}"));
                }
                if let Some(b) = &state.broadcaster {
                    b.default_public_url(&format!("{scheme}://{bound}"));
                }
            }
            None => bail!("could not listen on {addr} (is the port in use?)"),
        }
    }
    let handle_all = |f: &dyn Fn(&axum_server::Handle<SocketAddr>)| handles.iter().for_each(f);
    tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down: draining in-flight requests");
            handle_all(&|h| h.graceful_shutdown(Some(config.shutdown_grace)));
        }
        Some(res) = servers.join_next() => {
            handle_all(&|h| h.shutdown());
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("listener failed: {e}"),
                Err(e) => bail!("listener task failed: {e}"),
            }
        }
    }
    while let Some(res) = servers.join_next().await {
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, "listener ended with an error during shutdown");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_or_by_explicit_opt_in() {
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:4000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        assert_eq!(choose_transport(&[lo, lo6], false, false).unwrap(), Transport::PlainLoopback);
        assert!(choose_transport(&[lo, any], false, false).unwrap_err().to_string().contains("--tls-cert"));
        assert_eq!(choose_transport(&[any], false, true).unwrap(), Transport::PlainInsecure);
        assert_eq!(choose_transport(&[any], true, false).unwrap(), Transport::Tls);
        assert!(choose_transport(&[], true, false).is_err());
    }
}
