//! Signed, short-lived download URLs for `available` archives (OpenTok: valid 10 minutes,
//! a new one on each GET). HMAC-SHA256 over project, archive and expiry with a key that
//! lives only in this process's memory.
//!
//! Owns: URL format and verification. Must not touch: files or the store.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const VALIDITY_SECS: u64 = 600;

fn mac(key: &[u8; 32], api_key: &str, id: &str, expires: u64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(format!("{api_key}\n{id}\n{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

pub fn path(api_key: &str, id: &str) -> String {
    format!("/v2/project/{api_key}/archive/{id}/download")
}

pub fn make(key: &[u8; 32], base: &str, api_key: &str, id: &str, now: u64) -> String {
    let expires = now + VALIDITY_SECS;
    format!(
        "{}{}?expires={expires}&signature={}",
        base.trim_end_matches('/'),
        path(api_key, id),
        mac(key, api_key, id, expires)
    )
}

pub fn verify(key: &[u8; 32], api_key: &str, id: &str, expires: u64, signature: &str, now: u64) -> bool {
    if expires < now || expires > now + VALIDITY_SECS {
        return false;
    }
    let want = mac(key, api_key, id, expires);
    want.as_bytes().ct_eq(signature.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_expire_and_bind_project_and_archive() {
        let key = [7u8; 32];
        let url = make(&key, "https://h/", "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1000);
        assert!(url.starts_with("https://h/v2/project/47000001/archive/e85741ce-d280-4efa-a3ba-93379a68be06/download?expires=1600&signature="));
        let sig = url.rsplit_once("signature=").unwrap().1;
        assert!(verify(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1600, sig, 1000));
        assert!(verify(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1600, sig, 1600));
        assert!(!verify(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1600, sig, 1601), "expired");
        assert!(!verify(&key, "47000002", "e85741ce-d280-4efa-a3ba-93379a68be06", 1600, sig, 1000), "other project");
        assert!(!verify(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be07", 1600, sig, 1000), "other archive");
        assert!(!verify(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1700, sig, 1000), "changed expiry");
        assert!(!verify(&[8u8; 32], "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 1600, sig, 1000), "other key");
        assert!(
            !verify(
                &key,
                "47000001",
                "e85741ce-d280-4efa-a3ba-93379a68be06",
                99_999,
                &mac(&key, "47000001", "e85741ce-d280-4efa-a3ba-93379a68be06", 99_999),
                1000
            ),
            "too far in the future"
        );
    }
}
