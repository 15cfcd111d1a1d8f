//! A conservative scan of token `connection_data` for obvious personal data.
//!
//! Connection data is shown to every participant and lands in client logs, so it should
//! carry opaque IDs, never an email address, a phone number or a card number. This finds
//! the obvious cases only (it is a guard rail, not a DLP system). Owns: detection. Must not
//! touch: the policy decision (warn, reject, off), which belongs to the caller.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    PhoneNumber,
    CardNumber,
}

/// What to do when connection data looks personal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiPolicy {
    Off,
    #[default]
    Warn,
    Reject,
}

impl std::str::FromStr for PiiPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(PiiPolicy::Off),
            "warn" => Ok(PiiPolicy::Warn),
            "reject" => Ok(PiiPolicy::Reject),
            _ => Err(format!("unknown personal-data policy {s:?}; use off, warn or reject")),
        }
    }
}

impl PiiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiPolicy::Off => "off",
            PiiPolicy::Warn => "warn",
            PiiPolicy::Reject => "reject",
        }
    }
}

fn looks_like_email(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else { return false };
    let ok_local = !local.is_empty() && local.chars().all(|c| c.is_alphanumeric() || "._%+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    ok_local
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic))
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Runs of digits that may be separated by spaces, dashes, dots or parentheses.
fn digit_runs(text: &str) -> Vec<(Vec<u8>, bool)> {
    let mut runs = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut plus = false;
    let mut prev_sep = false;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            cur.push(d as u8);
            prev_sep = false;
        } else if !cur.is_empty() && !prev_sep && matches!(c, ' ' | '-' | '.' | '(' | ')') {
            prev_sep = true;
        } else if cur.is_empty() && matches!(c, '+' | '(') {
            plus |= c == '+';
        } else {
            if !cur.is_empty() {
                runs.push((std::mem::take(&mut cur), plus));
            }
            plus = c == '+';
            prev_sep = false;
        }
    }
    if !cur.is_empty() {
        runs.push((cur, plus));
    }
    runs
}

/// The kinds of obvious personal data found in `data` (each kind at most once).
pub fn scan(data: &str) -> Vec<PiiKind> {
    let mut found = Vec::new();
    let decoded: String = form_urlencoded::parse(data.as_bytes()).map(|(k, v)| format!("{k} {v} ")).collect();
    for text in [data, decoded.as_str()] {
        if text.split(|c: char| c.is_whitespace() || "&=,;:\"'<>()[]{}".contains(c)).any(looks_like_email)
            && !found.contains(&PiiKind::Email)
        {
            found.push(PiiKind::Email);
        }
        for (digits, plus) in digit_runs(text) {
            if (13..=19).contains(&digits.len()) && luhn(&digits) {
                if !found.contains(&PiiKind::CardNumber) {
                    found.push(PiiKind::CardNumber);
                }
            } else if ((plus && (8..=15).contains(&digits.len()))
                || (10..=15).contains(&digits.len()) && digits[0] == 0)
                && !found.contains(&PiiKind::PhoneNumber)
            {
                found.push(PiiKind::PhoneNumber);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_obvious() {
        assert_eq!(scan("name=Alice&email=alice@example.com"), [PiiKind::Email]);
        assert_eq!(scan("email=alice%40example.com"), [PiiKind::Email]);
        assert_eq!(scan("tel: +41 79 123 45 67"), [PiiKind::PhoneNumber]);
        assert_eq!(scan("phone=(0)20-7946-0958"), [PiiKind::PhoneNumber]);
        assert_eq!(scan("card 4111 1111 1111 1111"), [PiiKind::CardNumber]);
        assert_eq!(
            scan("{\"mail\":\"bob.smith+x@mail.co.uk\",\"cc\":\"5500-0000-0000-0004\"}"),
            [PiiKind::Email, PiiKind::CardNumber]
        );
    }

    #[test]
    fn leaves_opaque_ids_alone() {
        for ok in [
            "",
            "userId=8c1f2e",
            "name=Alice",
            "seat=4 & row=B",
            "id=1700000000123",
            "uuid=0f8fad5b-d9cb-469f-a165-70867728950e",
            "user@host",
            "ts=1700000000",
        ] {
            assert!(scan(ok).is_empty(), "{ok}: {:?}", scan(ok));
        }
    }
}
