//! Wall-clock access in one place, so the pure core always receives time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}
