//! Slowloris defence for every HTTP listener: a cap on open connections per source address.
//!
//! Owns: counting open connections per IP at accept time and refusing (closing at once) the
//! ones over the cap; the count drops when the connection's stream is dropped, whatever ends
//! it. Header-read and first-request timeouts live in `listen` (hyper and axum-server settings);
//! together they bound what one address can hold open. Must not touch: requests or routing.
//! Written here because axum-server has no per-address limit and tower's concurrency limits
//! count requests, not the idle or half-sent connections a slowloris holds.

use axum_server::accept::Accept;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The acceptor: wraps each accepted TCP stream in a [`Counted`] one, or refuses it.
#[derive(Clone)]
pub struct PerIpConnections {
    inner: Arc<Counts>,
}

struct Counts {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: Arc<crate::metrics::Metrics>,
}

impl PerIpConnections {
    /// At most `max` open connections per source address (`0` = no limit).
    pub fn new(max: usize, metrics: Arc<crate::metrics::Metrics>) -> Self {
        PerIpConnections { inner: Arc::new(Counts { max, open: Mutex::default(), refused: metrics }) }
    }

    fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.inner.max != 0 && *n >= self.inner.max {
            return None;
        }
        *n += 1;
        Some(Slot { counts: self.inner.clone(), ip })
    }

    /// Open connections from `ip` now (for tests and metrics).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.inner.open.lock().unwrap_or_else(|p| p.into_inner()).get(&ip).copied().unwrap_or(0)
    }
}

/// One counted connection; dropping it gives the place back.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address's place while it lives.
pub struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl<S> Accept<TcpStream, S> for PerIpConnections {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = match stream.peer_addr() {
            Ok(a) => a.ip(),
            Err(e) => return std::future::ready(Err(e)),
        };
        match self.acquire(ip) {
            Some(slot) => std::future::ready(Ok((Counted { stream, _slot: slot }, service))),
            None => {
                crate::metrics::inc(&self.inner.refused.counters.rate_limited);
                tracing::debug!(%ip, max = self.inner.max, "connection refused: too many open from this address");
                std::future::ready(Err(io::Error::other("too many open connections from this address")))
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_and_given_back_on_drop() {
        let limit = PerIpConnections::new(2, Arc::new(crate::metrics::Metrics::new(Vec::new())));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let first = limit.acquire(a).unwrap();
        let _second = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none(), "a third from one address is refused");
        assert!(limit.acquire(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(limit.open_from(a), 1);
        assert!(limit.acquire(a).is_some());
    }
}
