//! Rust server SDK for Conclave, shaped like the official OpenTok server SDKs: create
//! sessions over REST, and mint client tokens offline.
//!
//! Owns: the HTTP client side of the REST API. Must not touch: server internals; it speaks
//! only the public wire format, so it works against any OpenTok-compatible server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conclave_sdk::SdkError> {
//! use conclave_sdk::{Client, SessionOptions, TokenOptions, Role};
//! let client = Client::new("47000001", "<40-hex secret>", "https://conclave.example.com")?;
//! let session = client.create_session(&SessionOptions::routed()).await?;
//! let token = client.generate_token(&session.session_id, &TokenOptions::new(Role::Publisher))?;
//! # Ok(()) }
//! ```

use conclave_core::rest_auth;
use conclave_core::token::{MAX_CONNECTION_DATA_CHARS, MAX_LIFETIME_SECS, TokenParams, mint_jwt, mint_t1};
use conclave_core::wire::{ErrorBody, SessionCreated};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

pub use conclave_core::pii::{PiiKind, PiiPolicy};
pub use conclave_core::wire::{ArchiveMode, MediaMode, SessionInfo};
pub use conclave_core::{Role, SessionId, TokenFormat};

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server answered {status}: {message}")]
    Api { status: u16, message: String },
}

/// Options for `POST /session/create`. Defaults match the OpenTok SDKs (relayed, manual).
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub media_mode: MediaMode,
    pub archive_mode: ArchiveMode,
    pub location: Option<std::net::Ipv4Addr>,
    pub e2ee: bool,
    /// Conclave extension: the most participants the session admits.
    pub max_participants: Option<u32>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            media_mode: MediaMode::Relayed,
            archive_mode: ArchiveMode::Manual,
            location: None,
            e2ee: false,
            max_participants: None,
        }
    }
}

impl SessionOptions {
    pub fn routed() -> Self {
        SessionOptions { media_mode: MediaMode::Routed, ..Default::default() }
    }

    fn form(&self) -> String {
        let mut f = form_urlencoded_lite::Form::default();
        f.push("p2p.preference", if self.media_mode == MediaMode::Relayed { "enabled" } else { "disabled" });
        f.push("archiveMode", self.archive_mode.as_str());
        f.push("e2ee", if self.e2ee { "true" } else { "false" });
        if let Some(l) = self.location {
            f.push("location", &l.to_string());
        }
        if let Some(n) = self.max_participants {
            f.push("maxParticipants", &n.to_string());
        }
        f.finish()
    }
}

mod form_urlencoded_lite {
    //! The session-create form only carries ASCII tokens we produce, so no escaping is needed.
    #[derive(Default)]
    pub struct Form(Vec<String>);
    impl Form {
        pub fn push(&mut self, k: &str, v: &str) {
            self.0.push(format!("{k}={v}"));
        }
        pub fn finish(self) -> String {
            self.0.join("&")
        }
    }
}

/// Options for a client token. Defaults: publisher, 24 h, JWT, no data.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    pub role: Role,
    /// Unix seconds; default now + 24 h; at most 30 days ahead.
    pub expire_time: Option<u64>,
    pub data: Option<String>,
    pub initial_layout_classes: Vec<String>,
    pub format: TokenFormat,
}

impl TokenOptions {
    pub fn new(role: Role) -> Self {
        TokenOptions {
            role,
            expire_time: None,
            data: None,
            initial_layout_classes: Vec::new(),
            format: TokenFormat::Jwt,
        }
    }
}

/// A project's server-side handle. Keep it on your server: it holds the API secret.
pub struct Client {
    api_key: String,
    api_secret: Zeroizing<String>,
    base_url: String,
    http: reqwest::Client,
    pii_policy: PiiPolicy,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Client {
    pub fn new(api_key: &str, api_secret: &str, base_url: &str) -> Result<Self, SdkError> {
        let http =
            reqwest::Client::builder().user_agent(concat!("Conclave-Rust-SDK/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self::with_http_client(api_key, api_secret, base_url, http))
    }

    /// Use a prepared `reqwest::Client` (for example one that trusts a development CA).
    pub fn with_http_client(api_key: &str, api_secret: &str, base_url: &str, http: reqwest::Client) -> Self {
        Client {
            api_key: api_key.to_owned(),
            api_secret: Zeroizing::new(api_secret.to_owned()),
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
            pii_policy: PiiPolicy::Warn,
        }
    }

    /// What `generate_token` does with connection data that looks personal: `Warn` (default,
    /// a line on stderr), `Reject` (an error), or `Off`. Connection data is shown to every
    /// participant and lands in client logs, so it should be an opaque ID.
    pub fn with_pii_policy(mut self, policy: PiiPolicy) -> Self {
        self.pii_policy = policy;
        self
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// A fresh REST credential (HS256, 300 s), as the Node SDK makes one per request.
    pub fn rest_credential(&self) -> String {
        rest_auth::mint(&self.api_key, self.api_secret.as_bytes(), now_secs(), 300)
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, SdkError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text).map(|e| e.message).unwrap_or(text);
        Err(SdkError::Api { status, message })
    }

    pub async fn create_session(&self, options: &SessionOptions) -> Result<SessionCreated, SdkError> {
        let resp = self
            .http
            .post(format!("{}/session/create", self.base_url))
            .header("X-OPENTOK-AUTH", self.rest_credential())
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(options.form())
            .send()
            .await?;
        let mut created: Vec<SessionCreated> = Self::check(resp).await?.json().await?;
        created.pop().ok_or(SdkError::Api { status: 200, message: "empty session list".into() })
    }

    /// Conclave extension: the settings of one of this project's sessions.
    pub async fn get_session(&self, session_id: &str) -> Result<SessionInfo, SdkError> {
        let id = SessionId::parse(session_id).map_err(|e| SdkError::InvalidArgument(e.to_string()))?;
        let resp = self
            .http
            .get(format!("{}/v2/project/{}/session/{}", self.base_url, self.api_key, id))
            .header("X-OPENTOK-AUTH", self.rest_credential())
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    fn project_url(&self, path: &str) -> String {
        format!("{}/v2/project/{}{path}", self.base_url, self.api_key)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, SdkError> {
        let mut req =
            self.http.request(method, self.project_url(path)).header("X-OPENTOK-AUTH", self.rest_credential());
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::check(req.send().await?).await
    }

    fn checked_id<'a>(what: &str, id: &'a str) -> Result<&'a str, SdkError> {
        if !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Ok(id)
        } else {
            Err(SdkError::InvalidArgument(format!("{what} has characters outside [A-Za-z0-9_-]")))
        }
    }

    /// Disconnects a participant; its token stays refused until it expires.
    pub async fn force_disconnect(&self, session_id: &str, connection_id: &str) -> Result<(), SdkError> {
        let (s, c) = (Self::checked_id("session_id", session_id)?, Self::checked_id("connection_id", connection_id)?);
        self.call(reqwest::Method::DELETE, &format!("/session/{s}/connection/{c}"), None).await.map(drop)
    }

    /// A signal to everyone in the session, or to one connection.
    pub async fn signal(
        &self,
        session_id: &str,
        connection_id: Option<&str>,
        signal_type: &str,
        data: &str,
    ) -> Result<(), SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        let path = match connection_id {
            Some(c) => format!("/session/{s}/connection/{}/signal", Self::checked_id("connection_id", c)?),
            None => format!("/session/{s}/signal"),
        };
        self.call(reqwest::Method::POST, &path, Some(serde_json::json!({"type": signal_type, "data": data})))
            .await
            .map(drop)
    }

    /// Force-mutes one stream's audio.
    pub async fn mute_stream(&self, session_id: &str, stream_id: &str) -> Result<(), SdkError> {
        let (s, st) = (Self::checked_id("session_id", session_id)?, Self::checked_id("stream_id", stream_id)?);
        self.call(reqwest::Method::POST, &format!("/session/{s}/stream/{st}/mute"), Some(serde_json::json!({})))
            .await
            .map(drop)
    }

    /// Force-mutes every stream but `excluded`, including streams published later.
    pub async fn mute_all(&self, session_id: &str, excluded: &[&str]) -> Result<(), SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{s}/mute"),
            Some(serde_json::json!({"active": true, "excludedStreamIds": excluded})),
        )
        .await
        .map(drop)
    }

    pub async fn disable_force_mute(&self, session_id: &str) -> Result<(), SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        self.call(reqwest::Method::POST, &format!("/session/{s}/mute"), Some(serde_json::json!({"active": false})))
            .await
            .map(drop)
    }

    /// The session's streams (`{count, items}` with `subscriberCount`), as JSON.
    pub async fn list_streams(&self, session_id: &str) -> Result<serde_json::Value, SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        Ok(self.call(reqwest::Method::GET, &format!("/session/{s}/stream"), None).await?.json().await?)
    }

    /// Conclave extension: the live connections (`{count, items}`), as JSON.
    pub async fn list_connections(&self, session_id: &str) -> Result<serde_json::Value, SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        Ok(self.call(reqwest::Method::GET, &format!("/session/{s}/connection"), None).await?.json().await?)
    }

    /// Conclave extension: ends a session; everyone is disconnected and its tokens stop working.
    pub async fn end_session(&self, session_id: &str) -> Result<(), SdkError> {
        let s = Self::checked_id("session_id", session_id)?;
        self.call(reqwest::Method::DELETE, &format!("/session/{s}"), None).await.map(drop)
    }

    /// Mints a client token offline, with the same checks the official SDKs make.
    pub fn generate_token(&self, session_id: &str, options: &TokenOptions) -> Result<String, SdkError> {
        let id = SessionId::parse(session_id).map_err(|e| SdkError::InvalidArgument(e.to_string()))?;
        if id.api_key_hint().as_deref() != Some(self.api_key.as_str()) {
            return Err(SdkError::InvalidArgument(
                "token cannot be generated unless the session belongs to the API key".into(),
            ));
        }
        let now = now_secs();
        let expire_time = options.expire_time.unwrap_or(now + 24 * 3600);
        if expire_time <= now {
            return Err(SdkError::InvalidArgument("expire_time must be in the future".into()));
        }
        if expire_time - now > MAX_LIFETIME_SECS {
            return Err(SdkError::InvalidArgument("expire_time must be within 30 days".into()));
        }
        if options.data.as_deref().is_some_and(|d| d.chars().count() > MAX_CONNECTION_DATA_CHARS) {
            return Err(SdkError::InvalidArgument(format!(
                "data must be at most {MAX_CONNECTION_DATA_CHARS} characters"
            )));
        }
        if let Some(data) = options.data.as_deref() {
            let found = conclave_core::pii::scan(data);
            match (self.pii_policy, found.is_empty()) {
                (_, true) | (PiiPolicy::Off, _) => {}
                (PiiPolicy::Warn, false) => {
                    eprintln!("conclave-sdk: token data looks like personal data ({found:?}); use an opaque ID")
                }
                (PiiPolicy::Reject, false) => {
                    return Err(SdkError::InvalidArgument(format!(
                        "token data looks like personal data ({found:?}); use an opaque ID"
                    )));
                }
            }
        }
        let mut nonce = [0u8; 4];
        getrandom::fill(&mut nonce).map_err(|e| SdkError::InvalidArgument(e.to_string()))?;
        let params = TokenParams {
            session_id: id.as_str(),
            role: options.role,
            create_time: now,
            expire_time,
            nonce: u32::from_le_bytes(nonce) % 1_000_000,
            connection_data: options.data.as_deref(),
            initial_layout_classes: &options.initial_layout_classes,
        };
        Ok(match options.format {
            TokenFormat::Jwt => mint_jwt(&self.api_key, self.api_secret.as_bytes(), &params),
            TokenFormat::T1 => mint_t1(&self.api_key, self.api_secret.as_bytes(), &params),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_core_verifier() {
        let c = Client::with_http_client(
            "47000001",
            "5e8ff9bf55ba3508199d22e984129be6f0e1c3d2",
            "http://x",
            reqwest::Client::new(),
        );
        let sid = "1_MX40NzAwMDAwMX5-MTcwMDAwMDAwMDAwMH5rUTNuVDh2WDJwTG05WnJZNHNXYzZIYkp-UH5-";
        for format in [TokenFormat::Jwt, TokenFormat::T1] {
            let mut o = TokenOptions::new(Role::Subscriber);
            o.format = format;
            o.data = Some("name=Bo".into());
            let t = c.generate_token(sid, &o).unwrap();
            let claims =
                conclave_core::token::verify(&t, now_secs(), |_| Some([b"5e8ff9bf55ba3508199d22e984129be6f0e1c3d2"]))
                    .unwrap();
            assert_eq!(
                (claims.role, claims.format, claims.connection_data.as_deref()),
                (Role::Subscriber, format, Some("name=Bo"))
            );
        }
        assert!(
            c.generate_token(
                "1_MX4xMjM0NTZ-fjE3MDAwMDAwMDAwMDB-YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4flB-fg",
                &TokenOptions::new(Role::Publisher)
            )
            .is_err()
        );
        let mut o = TokenOptions::new(Role::Publisher);
        o.expire_time = Some(now_secs() + 31 * 24 * 3600);
        assert!(c.generate_token(sid, &o).is_err());
        let mut o = TokenOptions::new(Role::Publisher);
        o.data = Some("email=bo@example.com".into());
        assert!(c.generate_token(sid, &o).is_ok(), "warn is the default");
        let strict = c.with_pii_policy(PiiPolicy::Reject);
        assert!(
            matches!(strict.generate_token(sid, &o), Err(SdkError::InvalidArgument(m)) if m.contains("personal data"))
        );
        o.data = Some("userId=8c1f2e".into());
        assert!(strict.generate_token(sid, &o).is_ok());
    }
}
