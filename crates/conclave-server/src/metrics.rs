//! Operational metrics in the Prometheus text format, served at `/metrics` only to the
//! addresses on an allow-list (denied to everyone until one is configured).
//!
//! Owns: the counters, their rendering, and the allow-list check. Must not touch: the
//! meaning of events (callers count them). Gauges that are cheap to derive (live sessions,
//! connections, streams) are read from the hub when rendering instead of being tracked.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters, incremented where things happen.
#[derive(Default)]
pub struct Counters {
    pub joins: AtomicU64,
    pub joins_refused: AtomicU64,
    pub rest_auth_failures: AtomicU64,
    pub rate_limited: AtomicU64,
    pub webhook_deliveries: AtomicU64,
    pub webhook_retries: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub personal_data_warnings: AtomicU64,
    pub media_packets_sent: AtomicU64,
    pub media_bytes_sent: AtomicU64,
    pub media_packets_received: AtomicU64,
    pub media_bytes_received: AtomicU64,
    pub archives_started: AtomicU64,
    pub archives_uploaded: AtomicU64,
    pub archives_available: AtomicU64,
    pub archives_failed: AtomicU64,
    pub archives_expired: AtomicU64,
    pub archive_upload_failures: AtomicU64,
    pub archive_frames_dropped: AtomicU64,
    pub media_shed_backlog_packets: AtomicU64,
    pub media_shed_overload_packets: AtomicU64,
    /// Gauges the media workers keep (each adds the change of its own share).
    pub media_legs_shedding: AtomicU64,
    pub media_workers_overloaded: AtomicU64,
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// An IP network: address plus prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| format!("invalid address in {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().map_err(|_| format!("invalid prefix in {s:?}"))? };
        if prefix > max {
            return Err(format!("prefix too long in {s:?}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                self.prefix == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - u32::from(self.prefix)) == 0
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                self.prefix == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - u32::from(self.prefix)) == 0
            }
            _ => false,
        }
    }

    /// Allow-lists must be specific: `0.0.0.0/0` or `::/0` would open metrics to the world.
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

pub struct Metrics {
    pub counters: Counters,
    pub allow: Vec<Cidr>,
}

impl Metrics {
    pub fn new(allow: Vec<Cidr>) -> Self {
        Metrics { counters: Counters::default(), allow }
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip))
    }

    /// Renders the counters plus the gauges the caller derives.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let c = &self.counters;
        let counters = [
            ("conclave_joins_total", "Participants admitted to sessions", &c.joins),
            ("conclave_joins_refused_total", "Joins refused (token, limit, revocation, policy)", &c.joins_refused),
            ("conclave_rest_auth_failures_total", "REST calls refused for their credential", &c.rest_auth_failures),
            ("conclave_rate_limited_total", "Requests and connects refused by a rate limit", &c.rate_limited),
            ("conclave_webhook_deliveries_total", "Webhooks delivered", &c.webhook_deliveries),
            ("conclave_webhook_retries_total", "Webhook delivery attempts retried", &c.webhook_retries),
            ("conclave_webhook_failures_total", "Webhooks abandoned after every retry", &c.webhook_failures),
            (
                "conclave_personal_data_warnings_total",
                "Joins whose connection data looked personal",
                &c.personal_data_warnings,
            ),
            (
                "conclave_media_packets_sent_total",
                "UDP datagrams the SFU sent (media, RTCP, ICE)",
                &c.media_packets_sent,
            ),
            ("conclave_media_bytes_sent_total", "Bytes the SFU sent", &c.media_bytes_sent),
            ("conclave_media_packets_received_total", "UDP datagrams the SFU received", &c.media_packets_received),
            ("conclave_media_bytes_received_total", "Bytes the SFU received", &c.media_bytes_received),
            ("conclave_archives_started_total", "Archives started", &c.archives_started),
            ("conclave_archives_uploaded_total", "Archives delivered to a customer bucket", &c.archives_uploaded),
            ("conclave_archives_available_total", "Archives kept in the fallback store", &c.archives_available),
            ("conclave_archives_failed_total", "Archives that ended failed", &c.archives_failed),
            ("conclave_archives_expired_total", "Fallback copies removed after retention", &c.archives_expired),
            (
                "conclave_archive_upload_failures_total",
                "Uploads to a customer bucket that failed",
                &c.archive_upload_failures,
            ),
            (
                "conclave_archive_frames_dropped_total",
                "Frames a recorder could not keep up with",
                &c.archive_frames_dropped,
            ),
            (
                "conclave_media_shed_backlog_packets_total",
                "Media packets not sent to a subscriber whose send queue was too long (a slow link)",
                &c.media_shed_backlog_packets,
            ),
            (
                "conclave_media_shed_overload_packets_total",
                "Video packets not sent because a media worker was overloaded",
                &c.media_shed_overload_packets,
            ),
        ];
        let mut out = String::new();
        for (name, help, v) in counters {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Relaxed)));
        }
        for (name, help, v) in gauges {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().is_everything());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new(vec![]);
        inc(&m.counters.joins);
        let text = m.render(&[("conclave_connections", "Live connections", 3)]);
        assert!(text.contains("# TYPE conclave_joins_total counter\nconclave_joins_total 1\n"));
        assert!(text.contains("conclave_connections 3\n"));
        assert!(!m.allowed("127.0.0.1".parse().unwrap()), "denied until configured");
    }
}
