//! Project credentials: the shape of API keys and secrets, and the refusal of weak secrets.
//!
//! Owns: format and strength rules (compat doc 2.1). Must not touch: generation (which needs
//! a CSPRNG and lives with the caller) or storage.

/// Length of an API secret: 40 lowercase hex characters (160 bits).
pub const SECRET_HEX_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("API key must be 1 to 20 decimal digits")]
    BadApiKey,
    #[error("API secret must be exactly 40 lowercase hexadecimal characters")]
    BadSecretFormat,
    #[error("API secret is too weak (repeated or sequential characters); generate a random one")]
    WeakSecret,
}

pub fn check_api_key(key: &str) -> Result<(), CredentialError> {
    if (1..=20).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CredentialError::BadApiKey)
    }
}

/// Refuses malformed secrets and the weak ones people type by hand: few distinct characters,
/// long runs, or ascending/descending sequences such as the compat doc's `0123456789abcdef…`.
pub fn check_secret(secret: &str) -> Result<(), CredentialError> {
    let b = secret.as_bytes();
    if b.len() != SECRET_HEX_LEN || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(CredentialError::BadSecretFormat);
    }
    let mut seen = [false; 16];
    for c in b {
        seen[hex_value(*c)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    let steps = b.windows(2).filter(|w| {
        let d = hex_value(w[1]) as i32 - hex_value(w[0]) as i32;
        d == 1 || d == -1 || d == 0 || d == 15 || d == -15
    });
    // A random 40-hex secret has ~8 such steps on average; > 20 means a pattern.
    if distinct < 8 || steps.count() > 20 {
        return Err(CredentialError::WeakSecret);
    }
    Ok(())
}

fn hex_value(c: u8) -> usize {
    match c {
        b'0'..=b'9' => (c - b'0') as usize,
        _ => (c - b'a' + 10) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_weak_and_malformed_secrets() {
        assert_eq!(check_secret("0123456789abcdef0123456789abcdef01234567"), Err(CredentialError::WeakSecret));
        assert_eq!(check_secret(&"0".repeat(40)), Err(CredentialError::WeakSecret));
        assert_eq!(check_secret(&"ab".repeat(20)), Err(CredentialError::WeakSecret));
        assert_eq!(check_secret("fedcba9876543210fedcba9876543210fedcba98"), Err(CredentialError::WeakSecret));
        assert_eq!(check_secret("secret"), Err(CredentialError::BadSecretFormat));
        assert_eq!(check_secret("A9F3C07B1E4D2A6C8B0F9E3D7C1A5B2E4F6D8C0A"), Err(CredentialError::BadSecretFormat));
        assert_eq!(check_secret("a9f3c07b1e4d2a6c8b0f9e3d7c1a5b2e4f6d8c.a"), Err(CredentialError::BadSecretFormat));
    }

    #[test]
    fn accepts_random_looking_secrets() {
        assert_eq!(check_secret("a9f3c07b1e4d2a6c8b0f9e3d7c1a5b2e4f6d8c0a"), Ok(()));
        assert_eq!(check_secret("5e8ff9bf55ba3508199d22e984129be6f0e1c3d2"), Ok(()));
    }

    #[test]
    fn api_keys_are_digits() {
        assert!(check_api_key("47000001").is_ok());
        for bad in ["", "4700a", "1~2", "123456789012345678901", "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f"] {
            assert!(check_api_key(bad).is_err(), "{bad}");
        }
    }
}
