//! Abuse limits: token buckets keyed by source IP or API key.
//!
//! Owns: the bucket arithmetic and pruning of idle keys. Must not touch: what a request is
//! (the REST middleware, the REST auth extractor and the signaling upgrade decide the keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate` per second with bursts up to `burst`; a rate of 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate { per_sec: 0, burst: 0 };
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub rest_per_ip: Rate,
    pub rest_per_key: Rate,
    pub connect_per_ip: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            rest_per_ip: Rate { per_sec: 1000, burst: 2000 },
            rest_per_key: Rate { per_sec: 1000, burst: 2000 },
            connect_per_ip: Rate { per_sec: 200, burst: 500 },
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(rate.burst.max(1)), last: now }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let (per_sec, burst) = (f64::from(rate.per_sec), f64::from(rate.burst.max(1)));
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * per_sec).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.tokens + now.duration_since(self.last).as_secs_f64() * f64::from(rate.per_sec)
            >= f64::from(rate.burst.max(1))
    }
}

pub struct KeyedLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

const PRUNE_ABOVE: usize = 10_000;

impl KeyedLimiter {
    pub fn new(rate: Rate) -> Self {
        KeyedLimiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.rate.per_sec == 0 {
            return Ok(());
        }
        let rate = self.rate;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            // Full buckets carry no information: drop them.
            map.retain(|_, b| !b.is_full(rate, now));
        }
        map.entry(key.to_owned()).or_insert_with(|| Bucket::full(rate, now)).take(rate, now)
    }
}

/// The limiters the server holds.
pub struct Limiters {
    pub rest_per_ip: KeyedLimiter,
    pub rest_per_key: KeyedLimiter,
    pub connect_per_ip: KeyedLimiter,
}

impl Limiters {
    pub fn new(l: RateLimits) -> Self {
        Limiters {
            rest_per_ip: KeyedLimiter::new(l.rest_per_ip),
            rest_per_key: KeyedLimiter::new(l.rest_per_key),
            connect_per_ip: KeyedLimiter::new(l.connect_per_ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let l = KeyedLimiter::new(Rate { per_sec: 10, burst: 3 });
        let t = Instant::now();
        assert!((0..3).all(|_| l.check("a", t).is_ok()));
        let wait = l.check("a", t).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(l.check("b", t).is_ok(), "keys are independent");
        assert!(l.check("a", t + Duration::from_millis(100)).is_ok());
        assert!(KeyedLimiter::new(Rate::UNLIMITED).check("x", t).is_ok());
    }
}
