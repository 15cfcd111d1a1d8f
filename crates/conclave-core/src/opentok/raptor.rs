//! Raptor v2: the JSON layer inside Rumor MESSAGE bodies (protocol reference §6 to §9).
//! Every message is `{"method": M, "uri": U, "content": {...}}`, plus an optional top-level
//! `"reason"` from the server.
//!
//! Owns: the method names, the URI grammar ([`uri`]), the typed content of every message
//! ([`content`]), parsing of every client→server request into [`ClientMessage`] ([`client`]),
//! and builders for every server→client message and STATUS body ([`server`]).
//! Must not touch: sockets, sessions, permissions, clocks or randomness. Who may do what, and
//! which IDs and timestamps to use, is the caller's business; this module only turns bytes into
//! typed values and back.
//!
//! Parsing is an allow-list: unknown keys in `content` are ignored and dropped (so nothing a
//! client injects is relayed), and every string is bounded by the constants below.

pub mod client;
pub mod content;
pub mod server;
pub mod uri;

#[cfg(test)]
mod tests;

pub use client::{ClientMessage, ClientRaptor, ClientRequest, DataTarget, JsepTarget, parse_client_request};
pub use content::{
    ChannelAttributes, ChannelType, ConnectContent, CustomProperties, DataContent, DeleteContent, FitMode,
    IceCandidate, MuteRequest, SdpType, SignalContent, SourceStreamId, StreamChannel, StreamCreateContent,
    SubscriberCreateContent, VideoSource,
};
pub use server::{
    ArchiveObject, ConnectionObject, DestroyReason, IceServer, Permission, ServerRaptor, Snapshot, StreamObject,
    StreamOwner, StreamUpdate,
};
pub use uri::{RaptorUri, Resource, SessionPath, UriError};

use serde_json::Value;
use std::fmt;

/// Longest URI accepted.
pub const MAX_URI_BYTES: usize = 1024;
/// Longest ID in a URI or in an ID-valued content field (session IDs go up to 255).
pub const MAX_ID_BYTES: usize = 255;
/// Longest free-text field (stream name, user agent, reasons, channel IDs…).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Longest SDP (Chromium's offers were about 5.4 KB, §7.5).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Longest ICE candidate line.
pub const MAX_CANDIDATE_BYTES: usize = 2048;
/// Longest `data` string of a `data` message (captions, statistics).
pub const MAX_DATA_BYTES: usize = 32 * 1024;
/// Signal `type`: at most 128 characters of `[A-Za-z0-9-._~]` (§7.8).
pub const MAX_SIGNAL_TYPE_CHARS: usize = 128;
/// Signal `data`: its JSON form at most 8 192 characters (UTF-16 units, as JS counts) (§7.8).
pub const MAX_SIGNAL_DATA_CHARS: usize = 8192;
/// Most items in a list (channels, capabilities, mute channels).
pub const MAX_LIST_ITEMS: usize = 64;
/// Most stream IDs in a force-mute `exclusion` list.
pub const MAX_EXCLUSION_ITEMS: usize = 1024;
/// Highest frame rate accepted, in frames per second.
pub const MAX_FRAME_RATE: f64 = 1000.0;

/// Every Raptor method either side uses (§6.3, §6.4). Names are case-sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Create,
    Created,
    Delete,
    Deleted,
    Update,
    Updated,
    Signal,
    GenerateOffer,
    Offer,
    Answer,
    Pranswer,
    Candidate,
    Data,
    Notification,
    Migrate,
}

impl Method {
    pub const ALL: [Method; 15] = [
        Method::Create,
        Method::Created,
        Method::Delete,
        Method::Deleted,
        Method::Update,
        Method::Updated,
        Method::Signal,
        Method::GenerateOffer,
        Method::Offer,
        Method::Answer,
        Method::Pranswer,
        Method::Candidate,
        Method::Data,
        Method::Notification,
        Method::Migrate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Create => "create",
            Method::Created => "created",
            Method::Delete => "delete",
            Method::Deleted => "deleted",
            Method::Update => "update",
            Method::Updated => "updated",
            Method::Signal => "signal",
            Method::GenerateOffer => "generateoffer",
            Method::Offer => "offer",
            Method::Answer => "answer",
            Method::Pranswer => "pranswer",
            Method::Candidate => "candidate",
            Method::Data => "data",
            Method::Notification => "notification",
            Method::Migrate => "migrate",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaptorError {
    #[error("Rumor frame is a {0}, not a MESSAGE")]
    NotAMessage(crate::opentok::rumor::MessageType),
    #[error("Raptor body is not a JSON message: {0}")]
    Json(String),
    #[error("unknown Raptor method {0:?}")]
    UnknownMethod(String),
    #[error("bad Raptor URI: {0}")]
    Uri(#[from] UriError),
    #[error("a client may not send {method} on a {resource} URI")]
    UnsupportedRequest { method: Method, resource: &'static str },
    #[error("Raptor content must be a JSON object")]
    ContentNotObject,
    #[error("invalid {what} content: {detail}")]
    InvalidContent { what: &'static str, detail: String },
    #[error("{field} is {len} bytes; the limit is {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} has {count} items; the limit is {max}")]
    TooManyItems { field: &'static str, count: usize, max: usize },
    #[error("{field} is not a valid ID (1 to {MAX_ID_BYTES} characters of [A-Za-z0-9-._~])")]
    InvalidId { field: &'static str },
    #[error("{field} is out of range")]
    OutOfRange { field: &'static str },
    #[error("signal type must be at most {MAX_SIGNAL_TYPE_CHARS} characters of [A-Za-z0-9-._~]")]
    InvalidSignalType,
    #[error("signal data is {len} characters as JSON; the limit is {MAX_SIGNAL_DATA_CHARS}")]
    SignalDataTooLong { len: usize },
    #[error("content type {found:?} does not match method {method}")]
    SdpTypeMismatch { method: Method, found: SdpType },
}

impl RaptorError {
    /// The STATUS code a server should answer a request that failed to parse with:
    /// 413 for oversized signal data (§7.8), 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            RaptorError::SignalDataTooLong { .. } => 413,
            _ => 400,
        }
    }
}

/// Truncates attacker-controlled text before it goes into an error (at most 160 bytes).
pub(crate) fn clip(s: &str) -> String {
    let mut end = s.len().min(160);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// True for the characters allowed in URI segments and IDs: RFC 3986 "unreserved".
pub(crate) fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub(crate) fn is_valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES && s.bytes().all(is_id_byte)
}

pub(crate) fn check_id(field: &'static str, s: &str) -> Result<(), RaptorError> {
    if is_valid_id(s) { Ok(()) } else { Err(RaptorError::InvalidId { field }) }
}

pub(crate) fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), RaptorError> {
    if s.len() > max { Err(RaptorError::TooLong { field, len: s.len(), max }) } else { Ok(()) }
}

pub(crate) fn check_items<T>(field: &'static str, items: &[T], max: usize) -> Result<(), RaptorError> {
    if items.len() > max { Err(RaptorError::TooManyItems { field, count: items.len(), max }) } else { Ok(()) }
}

/// Writes `value` as compact JSON with object keys sorted, so output bytes do not depend on
/// serde_json's map feature flags.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Writes `{"method":…,"uri":…,"content":…[,"reason":…]}` in that key order.
pub(crate) fn envelope_json(method: Method, uri: &RaptorUri, content: &Value, reason: Option<&str>) -> String {
    let mut out = String::from("{\"method\":");
    out.push_str(&Value::String(method.as_str().to_owned()).to_string());
    out.push_str(",\"uri\":");
    out.push_str(&Value::String(uri.to_string()).to_string());
    out.push_str(",\"content\":");
    write_canonical(content, &mut out);
    if let Some(reason) = reason {
        out.push_str(",\"reason\":");
        out.push_str(&Value::String(reason.to_owned()).to_string());
    }
    out.push('}');
    out
}

/// The envelope as it arrives, before the URI and content are typed.
pub(crate) struct RawEnvelope {
    pub method: Method,
    pub uri: RaptorUri,
    pub content: serde_json::Map<String, Value>,
    pub reason: Option<String>,
}

/// Parses the generic envelope: `method` (a known name), `uri` (the grammar of §6.2), `content`
/// (an object; absent or `null` means `{}`) and an optional string `reason`.
pub(crate) fn parse_envelope(body: &str) -> Result<RawEnvelope, RaptorError> {
    let value: Value = serde_json::from_str(body).map_err(|e| RaptorError::Json(clip(&e.to_string())))?;
    let Value::Object(mut map) = value else {
        return Err(RaptorError::Json("the body is not a JSON object".into()));
    };
    let method = match map.get("method") {
        Some(Value::String(m)) => Method::parse(m).ok_or_else(|| RaptorError::UnknownMethod(clip(m)))?,
        _ => return Err(RaptorError::Json("\"method\" must be a string".into())),
    };
    let uri = match map.get("uri") {
        Some(Value::String(u)) => RaptorUri::parse(u)?,
        _ => return Err(RaptorError::Json("\"uri\" must be a string".into())),
    };
    let content = match map.remove("content") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(RaptorError::ContentNotObject),
    };
    let reason = match map.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => {
            check_len("reason", &r, MAX_TEXT_BYTES)?;
            Some(r)
        }
        Some(_) => return Err(RaptorError::Json("\"reason\" must be a string".into())),
    };
    Ok(RawEnvelope { method, uri, content, reason })
}
