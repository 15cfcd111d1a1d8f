//! Human durations for flags: `90`, `90s`, `15m`, `1h`, `7d`.

use std::time::Duration;

/// Like [`parse`], and also accepts milliseconds (`250ms`), for short test settings.
pub fn parse_ms(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix("ms") {
        Some(n) => n.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("invalid duration {s:?}")),
        None => parse(s),
    }
}

pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}; use e.g. 90s, 15m, 1h, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration unit in {s:?}; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_units() {
        assert_eq!(super::parse("90").unwrap().as_secs(), 90);
        assert_eq!(super::parse("15m").unwrap().as_secs(), 900);
        assert_eq!(super::parse("1h").unwrap().as_secs(), 3600);
        assert_eq!(super::parse("7d").unwrap().as_secs(), 604_800);
        assert!(super::parse("1w").is_err());
        assert!(super::parse("h").is_err());
    }
}
