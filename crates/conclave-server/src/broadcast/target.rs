//! Outbound targets of live streaming under the SSRF policy: an RTMP(S) server URL (checked
//! when the broadcast starts and again, resolved and pinned, before every reconnect) and the
//! Audio Connector's WebSocket URI. Names are resolved here and every address is checked; a
//! plain `rtmp://` push connects to the checked address itself (no second lookup that DNS
//! rebinding could answer differently). `rtmps://` keeps the name for TLS, so a name that
//! changes its answer between the check and ffmpeg's own lookup is the one window left; it
//! is checked again on every reconnect.
//!
//! Owns: these checks. Must not touch: the policy itself (`conclave_core::netpolicy`).

use crate::webhook::{CallbackPolicy, is_public};
use std::net::{SocketAddr, ToSocketAddrs};

/// The parts of an `rtmp://host[:port]/app…` URL.
struct RtmpUrl<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse(url: &str) -> Result<RtmpUrl<'_>, String> {
    let (tls, rest) = match (url.strip_prefix("rtmps://"), url.strip_prefix("rtmp://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err("the RTMP server URL must start with rtmp:// or rtmps://".into()),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("bad IPv6 host")?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| "bad port in the RTMP server URL".to_owned())?,
        None if tls => 443,
        None => 1935,
    };
    if host.is_empty() {
        return Err("the RTMP server URL has no host".into());
    }
    Ok(RtmpUrl { tls, host, port, path })
}

fn check_addrs(host: &str, addrs: &[SocketAddr], policy: CallbackPolicy) -> Result<SocketAddr, String> {
    let first = *addrs.first().ok_or_else(|| format!("{host} has no address"))?;
    if !policy.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} is a private, loopback or link-local address (allow with --allow-private-callbacks)"
        ));
    }
    Ok(first)
}

fn is_localhost(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost")
}

/// At start: resolves the RTMP server's name and checks every address (a clear error, with
/// no URL or key in it, when refused).
pub async fn check_rtmp(server_url: &str, policy: CallbackPolicy) -> Result<(), String> {
    let u = parse(server_url)?;
    if is_localhost(u.host) && !policy.allow_private {
        return Err("localhost is not a public address (allow with --allow-private-callbacks)".into());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((u.host, u.port))
        .await
        .map_err(|_| format!("cannot resolve the RTMP server {}", u.host))?
        .collect();
    check_addrs(u.host, &addrs, policy).map(|_| ())
}

/// Before each (re)connect, on the output's thread: the URL to push to (server URL + `/` +
/// stream name), with a plain RTMP host replaced by the address that was checked.
pub fn resolve_rtmp(server_url: &str, stream_name: &str, policy: CallbackPolicy) -> Result<String, String> {
    let u = parse(server_url)?;
    if is_localhost(u.host) && !policy.allow_private {
        return Err("localhost is not a public address".into());
    }
    let addrs: Vec<SocketAddr> =
        (u.host, u.port).to_socket_addrs().map_err(|_| format!("cannot resolve {}", u.host))?.collect();
    let addr = check_addrs(u.host, &addrs, policy)?;
    let path = u.path.trim_end_matches('/');
    let key = stream_name.trim_start_matches('/');
    Ok(if u.tls {
        format!("rtmps://{}:{}/{path}/{key}", bracket(u.host), u.port)
    } else {
        format!("rtmp://{addr}/{path}/{key}")
    })
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

/// The Audio Connector's target: `wss://` (or `ws://` where plain http callbacks are
/// allowed), every address checked. Returns the URL and the address to connect to.
pub async fn check_websocket(uri: &str, policy: CallbackPolicy) -> Result<(reqwest::Url, SocketAddr), String> {
    let as_http = if let Some(r) = uri.strip_prefix("wss://") {
        format!("https://{r}")
    } else if let Some(r) = uri.strip_prefix("ws://") {
        format!("http://{r}")
    } else {
        return Err("websocket.uri must be a ws:// or wss:// URL".into());
    };
    let checked = crate::webhook::check_callback_url(&as_http, policy).map_err(|e| {
        e.replace("callback url", "websocket.uri").replace("--allow-http-callbacks", "--allow-http-callbacks (ws://)")
    })?;
    let host = checked.host_str().ok_or("no host")?.trim_matches(|c| c == '[' || c == ']').to_owned();
    let port = checked.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|_| format!("cannot resolve {host}"))?.collect();
    let addr = check_addrs(&host, &addrs, policy)?;
    let url = reqwest::Url::parse(uri).map_err(|_| "websocket.uri is not a valid URL".to_owned())?;
    Ok((url, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls_are_pinned_and_private_ones_refused() {
        let strict = CallbackPolicy::default();
        let open = CallbackPolicy { allow_private: true, allow_http: true };
        assert!(resolve_rtmp("rtmp://127.0.0.1:1935/live", "key", strict).is_err());
        assert!(resolve_rtmp("rtmp://10.1.2.3/live", "key", strict).is_err());
        assert!(resolve_rtmp("rtmp://localhost/live", "key", strict).is_err());
        assert_eq!(resolve_rtmp("rtmp://127.0.0.1:1935/live/", "key", open).unwrap(), "rtmp://127.0.0.1:1935/live/key");
        assert_eq!(resolve_rtmp("rtmp://127.0.0.1/live", "k", open).unwrap(), "rtmp://127.0.0.1:1935/live/k");
        assert_eq!(resolve_rtmp("rtmps://127.0.0.1/app", "k", open).unwrap(), "rtmps://127.0.0.1:443/app/k");
        assert!(resolve_rtmp("http://example.com/x", "k", open).is_err());
        let err = resolve_rtmp("rtmp://192.168.1.1/live", "secret-key", strict).unwrap_err();
        assert!(!err.contains("secret-key"), "{err}");
    }

    #[tokio::test]
    async fn websocket_targets_follow_the_policy() {
        let strict = CallbackPolicy::default();
        let open = CallbackPolicy { allow_private: true, allow_http: true };
        assert!(check_websocket("ws://127.0.0.1:9/x", strict).await.is_err());
        assert!(check_websocket("wss://127.0.0.1:9/x", strict).await.is_err());
        assert!(check_websocket("wss://[::1]:9/x", strict).await.is_err());
        assert!(check_websocket("https://127.0.0.1/x", open).await.is_err());
        let (url, addr) = check_websocket("ws://127.0.0.1:9/x?a=b", open).await.unwrap();
        assert_eq!((url.as_str(), addr.port()), ("ws://127.0.0.1:9/x?a=b", 9));
        assert!(check_rtmp("rtmp://169.254.169.254/latest", strict).await.is_err());
        assert!(check_rtmp("rtmp://127.0.0.1/live", open).await.is_ok());
    }
}
