//! Vonage Video applications: provisioning (an application ID and an RSA key pair, or a
//! public key the customer made), key rotation with a grace period, and RS256 signing for
//! the CLI's tokens, the benchmark and tests.
//!
//! Owns: the CSPRNG use for application IDs, key pairs and webhook secrets, PEM encoding of what is printed
//! once, and the claim sets Conclave signs (the same as the Vonage SDKs'). Must not touch:
//! verification (core's `app_jwt` and `auth`), storage of anything private: the server keeps
//! only public keys, and a generated private key is returned to the caller and forgotten.

use crate::clock;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use conclave_core::app_jwt::{KeyError, public_key_der_from_pem};
use conclave_store::{NewApplication, Store, StoreError};
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    #[error("public key: {0}")]
    Key(#[from] KeyError),
    #[error(
        "private key: not an RSA private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`)"
    )]
    BadPrivateKey,
    #[error("no application with ID {0}")]
    NoSuchApplication(String),
    #[error("that public key is already registered for this application")]
    SameKey,
    #[error("key generation failed")]
    Generate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A created application; `private_key_pem` only when Conclave generated the pair.
/// `webhook_secret` signs its webhooks (HS256, as a project's secret signs a project's) and
/// is no credential.
pub struct CreatedApplication {
    pub application_id: String,
    pub private_key_pem: Option<Zeroizing<String>>,
    pub webhook_secret: Zeroizing<String>,
}

/// A fresh RSA-2048 pair: (PKCS#8 private key in PEM, SubjectPublicKeyInfo DER).
pub fn generate_key_pair() -> Result<(Zeroizing<String>, Vec<u8>), ApplicationError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| ApplicationError::Generate)?;
    let pkcs8: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| ApplicationError::Generate)?;
    let spki = pair.public_key().as_der().map_err(|_| ApplicationError::Generate)?.as_ref().to_vec();
    Ok((pem("PRIVATE KEY", pkcs8.as_ref()), spki))
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A public key in PEM, from its DER.
pub fn public_key_pem(spki: &[u8]) -> String {
    pem("PUBLIC KEY", spki).to_string()
}

/// A random version-4 UUID, lowercase, as Vonage application IDs are.
fn generate_application_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    conclave_core::ids::uuid_v4(b)
}

/// Creates an application with the customer's public key (PEM), or with a pair generated
/// here whose private key is returned once. Audited as `application.create`.
pub async fn create_application(
    store: &dyn Store,
    name: &str,
    public_key_pem: Option<&str>,
) -> Result<CreatedApplication, ApplicationError> {
    let (private_key_pem, der) = match public_key_pem {
        Some(text) => (None, public_key_der_from_pem(text)?),
        None => {
            let (private, der) = generate_key_pair()?;
            (Some(private), der)
        }
    };
    let webhook_secret = crate::provision::generate_secret();
    loop {
        let application_id = generate_application_id();
        let app = NewApplication {
            application_id: application_id.clone(),
            name: name.to_owned(),
            public_key_der: der.clone(),
            webhook_secret: webhook_secret.clone(),
            created_at_ms: clock::unix_ms(),
        };
        match store.insert_application(&app).await {
            Ok(()) => {
                let detail = serde_json::json!({
                    "name": name,
                    "key_id": conclave_store::public_key_id(&der),
                    "generated": private_key_pem.is_some(),
                });
                let actor = crate::audit::Actor::cli();
                crate::audit::record(
                    store,
                    &actor,
                    Some(&application_id),
                    "application.create",
                    &application_id,
                    detail,
                )
                .await;
                return Ok(CreatedApplication { application_id, private_key_pem, webhook_secret });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Registers a new public key (given, or generated here and returned once); the keys in use
/// until now keep verifying for `grace`. Returns the new private key if generated and the
/// unix time the previous key stops working. Audited as `application.rotate_key`.
pub async fn rotate_key(
    store: &dyn Store,
    application_id: &str,
    public_key_pem: Option<&str>,
    grace: Duration,
) -> Result<(Option<Zeroizing<String>>, u64), ApplicationError> {
    let (private, der) = match public_key_pem {
        Some(text) => (None, public_key_der_from_pem(text)?),
        None => {
            let (private, der) = generate_key_pair()?;
            (Some(private), der)
        }
    };
    let until = clock::unix_secs() + grace.as_secs();
    match store.rotate_application_key(application_id, &der, until, clock::unix_ms()).await {
        Err(StoreError::NotFound) => Err(ApplicationError::NoSuchApplication(application_id.to_owned())),
        Err(StoreError::Conflict) => Err(ApplicationError::SameKey),
        Err(e) => Err(e.into()),
        Ok(()) => {
            let detail = serde_json::json!({
                "key_id": conclave_store::public_key_id(&der),
                "generated": private.is_some(),
                "grace_secs": grace.as_secs(),
                "previous_valid_until": until,
            });
            let actor = crate::audit::Actor::cli();
            crate::audit::record(store, &actor, Some(application_id), "application.rotate_key", application_id, detail)
                .await;
            Ok((private, until))
        }
    }
}

/// An application's private key, for signing RS256 JWTs as the Vonage SDKs do.
pub struct Signer(KeyPair);

impl Signer {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Vonage and `application
    /// create` hand out) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(text: &str) -> Result<Signer, ApplicationError> {
        let text = text.trim();
        for (label, pkcs8) in [("PRIVATE KEY", true), ("RSA PRIVATE KEY", false)] {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let Some(body) = text.strip_prefix(begin.as_str()).and_then(|r| r.split_once(end.as_str())) else {
                continue;
            };
            let b64: Zeroizing<String> = Zeroizing::new(body.0.chars().filter(|c| !c.is_whitespace()).collect());
            let der = Zeroizing::new(STANDARD.decode(b64.as_bytes()).map_err(|_| ApplicationError::BadPrivateKey)?);
            let pair = if pkcs8 { KeyPair::from_pkcs8(&der) } else { KeyPair::from_der(&der) };
            return pair.map(Signer).map_err(|_| ApplicationError::BadPrivateKey);
        }
        Err(ApplicationError::BadPrivateKey)
    }

    /// The public key that verifies this signer's tokens (SubjectPublicKeyInfo DER).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.0.public_key().as_der().map(|d| d.as_ref().to_vec()).unwrap_or_default()
    }

    /// Signs `claims` as a compact JWS with `{"alg":"RS256","typ":"JWT"}`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"RS256","typ":"JWT"}
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("JSON value serializes"));
        let input = format!("{HEADER}.{payload}");
        let mut sig = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig)
            .expect("RSA signing with a valid key pair");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A REST credential with the Vonage SDKs' claims (`application_id`, `iat`, `exp`, `jti`).
    pub fn rest_credential(&self, application_id: &str, now: u64, lifetime_secs: u64) -> String {
        self.sign(&serde_json::json!({
            "application_id": application_id, "iat": now, "exp": now + lifetime_secs, "jti": random_jti(),
        }))
    }

    /// A client token with the claim set of the Vonage SDKs' `generateClientToken`.
    pub fn client_token(&self, application_id: &str, p: &ClientTokenParams<'_>) -> String {
        let mut claims = serde_json::json!({
            "application_id": application_id,
            "scope": "session.connect",
            "session_id": p.session_id,
            "role": p.role.as_str(),
            "initial_layout_class_list": p.initial_layout_classes.join(" "),
            "iat": p.issued_at,
            "exp": p.expires_at,
            "jti": random_jti(),
            "sub": "video",
            "acl": {"paths": {"/session/**": {}}},
        });
        if let Some(data) = p.connection_data {
            claims["connection_data"] = data.into();
        }
        self.sign(&claims)
    }
}

/// What an application client token carries.
pub struct ClientTokenParams<'a> {
    pub session_id: &'a str,
    pub role: conclave_core::Role,
    pub issued_at: u64,
    pub expires_at: u64,
    pub connection_data: Option<&'a str>,
    pub initial_layout_classes: &'a [String],
}

fn random_jti() -> String {
    generate_application_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_sign_what_the_verifier_accepts() {
        let (private, spki) = generate_key_pair().unwrap();
        let signer = Signer::from_pem(&private).unwrap();
        assert_eq!(signer.public_key_der(), spki);
        let app = generate_application_id();
        assert!(conclave_core::app_jwt::check_application_id(&app), "{app}");
        let t = signer.rest_credential(&app, 1_700_000_000, 300);
        let cred = conclave_core::app_jwt::UnverifiedAppCredential::parse(&t).unwrap();
        let key = conclave_core::app_jwt::AppPublicKey::from_der(&spki).unwrap();
        assert!(cred.signature_matches(&key));
        assert_eq!(cred.into_credential(1_700_000_000).unwrap().api_key, app);
        let pem = public_key_pem(&spki);
        assert_eq!(public_key_der_from_pem(&pem).unwrap(), spki);
        assert!(matches!(Signer::from_pem(&pem), Err(ApplicationError::BadPrivateKey)));
    }
}
