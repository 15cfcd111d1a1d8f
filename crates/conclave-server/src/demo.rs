//! The demo app (`conclave serve --demo`): a login page, a meeting page and the browser SDK,
//! embedded in the binary so it runs from a fresh clone with no npm step.
//!
//! Owns: demo logins (an in-memory cookie session per login) and the token endpoint behind
//! them. It shows the best practices users should copy: the token endpoint requires a login
//! (anonymous callers get 401), one session per meeting, one token per participant, short
//! token lifetimes, and no personal data in the token's connection data (an opaque ID; the
//! display name travels in a signal). Must not touch: the REST API or signaling internals.

use crate::api::ApiError;
use crate::api::sessions::create_session;
use crate::{AppState, clock};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use conclave_core::Role;
use conclave_core::token::{TokenParams, mint_jwt};
use conclave_core::wire::{MediaMode, SessionCreateRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const COOKIE: &str = "conclave_demo";
const TOKEN_LIFETIME_SECS: u64 = 2 * 3600;
/// Logins last as long as their cookie (12 h); at most this many are kept.
const LOGIN_LIFETIME_SECS: u64 = 12 * 3600;
const MAX_LOGINS: usize = 10_000;
/// Meetings remembered (name → session); past this, new meeting names are refused.
const MAX_MEETINGS: usize = 10_000;
/// Shortest password accepted from the environment.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Failed logins allowed across all addresses per window before everyone waits.
const GLOBAL_FAILURES_PER_WINDOW: u32 = 30;
const FAILURE_WINDOW_SECS: u64 = 10;
/// Longest lockout of one address after repeated failures.
const MAX_LOCKOUT_SECS: u64 = 300;

pub struct DemoConfig {
    pub api_key: String,
    pub password: Zeroizing<String>,
    pub moderator_password: Zeroizing<String>,
    /// Media mode for new meetings unless `?mode=` says otherwise.
    pub default_mode: MediaMode,
    /// Set the `Secure` attribute on the login cookie (when served over HTTPS).
    pub secure_cookie: bool,
}

struct Login {
    name: String,
    role: Role,
    expires_at: u64,
    /// Opaque per-login ID: what goes into the token's connection data.
    uid: String,
}

pub struct Demo {
    config: DemoConfig,
    logins: Mutex<HashMap<String, Arc<Login>>>,
    meetings: Mutex<HashMap<(String, MediaMode, bool), String>>,
    guesses: Mutex<Guesses>,
}

/// Password guessing back-off: each address waits 1, 2, 4 … (at most 300) seconds after each
/// failure before it may try again, and all addresses together get a few failures per window
/// (a distributed guesser). A success clears the address's count.
#[derive(Default)]
struct Guesses {
    by_ip: HashMap<std::net::IpAddr, (u32, u64)>,
    window_start: u64,
    window_failures: u32,
}

impl Guesses {
    /// Seconds to wait before this address may try, if it must.
    fn wait(&mut self, ip: std::net::IpAddr, now: u64) -> Option<u64> {
        if now >= self.window_start + FAILURE_WINDOW_SECS {
            (self.window_start, self.window_failures) = (now, 0);
        }
        if self.window_failures >= GLOBAL_FAILURES_PER_WINDOW {
            return Some(self.window_start + FAILURE_WINDOW_SECS - now);
        }
        let (_, until) = self.by_ip.get(&ip)?;
        (*until > now).then(|| until - now)
    }

    fn failed(&mut self, ip: std::net::IpAddr, now: u64) {
        self.window_failures += 1;
        if self.by_ip.len() >= MAX_LOGINS {
            self.by_ip.retain(|_, (_, until)| *until + MAX_LOCKOUT_SECS > now);
        }
        let (count, until) = self.by_ip.entry(ip).or_insert((0, 0));
        *count = count.saturating_add(1);
        *until = now + (1u64 << (*count - 1).min(9)).min(MAX_LOCKOUT_SECS);
    }

    fn succeeded(&mut self, ip: std::net::IpAddr) {
        self.by_ip.remove(&ip);
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    hex::encode(b)
}

fn eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn router(demo: Arc<Demo>) -> Router<AppState> {
    let html = "text/html; charset=utf-8";
    let js = "text/javascript; charset=utf-8";
    Router::new()
        .route("/demo", get(|| async { axum::response::Redirect::permanent("/demo/") }))
        .route(
            "/demo/",
            get(move || async move { static_file(include_str!("../../../clients/demo/index.html"), html) }),
        )
        .route(
            "/demo/meeting.html",
            get(move || async move { static_file(include_str!("../../../clients/demo/meeting.html"), html) }),
        )
        .route(
            "/demo/meeting.js",
            get(move || async move { static_file(include_str!("../../../clients/demo/meeting.js"), js) }),
        )
        .route(
            "/demo/login.js",
            get(move || async move { static_file(include_str!("../../../clients/demo/login.js"), js) }),
        )
        .route(
            "/demo/demo.css",
            get(|| async { static_file(include_str!("../../../clients/demo/demo.css"), "text/css; charset=utf-8") }),
        )
        .route(
            "/demo/conclave.js",
            get(move || async move { static_file(include_str!("../../../clients/js/conclave.js"), js) }),
        )
        .route("/demo/api/login", post(login))
        .route("/demo/api/meetings/{room}/join", post(join))
        .layer(axum::Extension(demo))
        .layer(axum::middleware::map_response(page_headers))
}

/// On every demo answer: no framing (clickjacking), no MIME sniffing, no referrer.
async fn page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn static_file(body: &'static str, mime: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static("default-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"));
    r
}

impl Demo {
    pub fn new(config: DemoConfig) -> Arc<Demo> {
        Arc::new(Demo { config, logins: Mutex::default(), meetings: Mutex::default(), guesses: Mutex::default() })
    }

    fn login_of(&self, headers: &HeaderMap) -> Option<Arc<Login>> {
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim);
        let id = cookies.filter_map(|c| c.strip_prefix(COOKIE)?.strip_prefix('=')).next()?;
        self.logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|l| l.expires_at > clock::unix_secs())
            .cloned()
    }
}

#[derive(serde::Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    axum::Extension(demo): axum::Extension<Arc<Demo>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<axum::Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        return Err(ApiError::bad_request("name must be 1 to 40 characters"));
    }
    let (ip, now) = (peer.ip(), clock::unix_secs());
    if let Some(wait) = demo.guesses.lock().unwrap_or_else(|p| p.into_inner()).wait(ip, now) {
        return Err(ApiError::too_many(std::time::Duration::from_secs(wait), "source address after failed logins"));
    }
    let role = if eq(&b.password, &demo.config.moderator_password) {
        Role::Moderator
    } else if eq(&b.password, &demo.config.password) {
        Role::Publisher
    } else {
        demo.guesses.lock().unwrap_or_else(|p| p.into_inner()).failed(ip, now);
        tracing::warn!(%ip, "demo login refused");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong password"));
    };
    demo.guesses.lock().unwrap_or_else(|p| p.into_inner()).succeeded(ip);
    let id = random_hex(32);
    let now = clock::unix_secs();
    let mut logins = demo.logins.lock().unwrap_or_else(|p| p.into_inner());
    logins.retain(|_, l| l.expires_at > now);
    if logins.len() >= MAX_LOGINS {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too many demo logins; try again later"));
    }
    logins.insert(
        id.clone(),
        Arc::new(Login { name: name.to_owned(), role, uid: random_hex(8), expires_at: now + LOGIN_LIFETIME_SECS }),
    );
    drop(logins);
    let secure = if demo.config.secure_cookie { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/demo; HttpOnly; SameSite=Strict; Max-Age=43200{secure}");
    let mut r = axum::Json(serde_json::json!({"name": name, "role": role})).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    Ok(r)
}

#[derive(serde::Deserialize)]
struct JoinQuery {
    mode: Option<String>,
    /// `1`: an end-to-end encrypted meeting (routed; the secret never reaches the server).
    e2ee: Option<String>,
}

/// The token endpoint: one session per meeting (and media mode), one token per participant.
async fn join(
    State(state): State<AppState>,
    axum::Extension(demo): axum::Extension<Arc<Demo>>,
    headers: HeaderMap,
    Path(room): Path<String>,
    Query(q): Query<JoinQuery>,
) -> Result<Response, ApiError> {
    let Some(login) = demo.login_of(&headers) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first"));
    };
    if room.is_empty() || room.len() > 40 || !room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request("meeting names are 1 to 40 characters of A-Z, a-z, 0-9, - and _"));
    }
    let mode = match q.mode.as_deref() {
        Some("relayed") => MediaMode::Relayed,
        Some("routed") => MediaMode::Routed,
        None | Some("") => demo.config.default_mode,
        Some(_) => return Err(ApiError::bad_request("mode must be relayed or routed")),
    };
    let e2ee = q.e2ee.as_deref() == Some("1");
    if e2ee && mode != MediaMode::Routed {
        return Err(ApiError::bad_request("end-to-end encrypted meetings are routed"));
    }
    let existing = demo.meetings.lock().unwrap_or_else(|p| p.into_inner()).get(&(room.clone(), mode, e2ee)).cloned();
    let session_id = match existing {
        Some(id) => id,
        None => {
            let req = SessionCreateRequest {
                media_mode: mode,
                e2ee,
                ..SessionCreateRequest::from_form(b"").expect("the empty form is valid")
            };
            if demo.meetings.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_MEETINGS {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many demo meetings; use an existing one",
                ));
            }
            let record = create_session(state.store.as_ref(), &demo.config.api_key, &req).await?;
            let mut meetings = demo.meetings.lock().unwrap_or_else(|p| p.into_inner());
            meetings.entry((room.clone(), mode, e2ee)).or_insert(record.session_id).clone()
        }
    };
    let project =
        state.store.project(&demo.config.api_key).await.map_err(|e| ApiError::internal("project lookup failed", &e))?;
    let project = project.ok_or_else(|| ApiError::internal("the demo project is missing", &"no project"))?;
    let now = clock::unix_secs();
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|e| ApiError::internal("CSPRNG failed", &e))?;
    let data = format!("uid={}", login.uid);
    let token = mint_jwt(
        &project.api_key,
        project.secret.as_bytes(),
        &TokenParams {
            session_id: &session_id,
            role: login.role,
            create_time: now,
            expire_time: now + TOKEN_LIFETIME_SECS,
            nonce: u32::from_le_bytes(nonce) % 1_000_000,
            connection_data: Some(&data),
            initial_layout_classes: &[],
        },
    );
    Ok(axum::Json(serde_json::json!({
        "apiKey": project.api_key, "sessionId": session_id, "token": token, "name": login.name, "role": login.role, "mediaMode": mode,
    }))
    .into_response())
}
