//! REST wire types: request parsing and response bodies exactly as the SDKs need them
//! (compat doc 5.5 and 6.1).
//!
//! Owns: turning request bytes into validated values and values into response bytes.
//! Must not touch: authentication, storage or HTTP status plumbing.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The JSON error body used everywhere: `{"code": <int>, "message": "<text>"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Peer-to-peer (`p2p.preference=enabled`).
    Relayed,
    /// Through Conclave's SFU (`p2p.preference=disabled`); required for archiving.
    Routed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveMode {
    Manual,
    Always,
}

impl MediaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaMode::Relayed => "relayed",
            MediaMode::Routed => "routed",
        }
    }
}

impl ArchiveMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveMode::Manual => "manual",
            ArchiveMode::Always => "always",
        }
    }
}

/// Resolutions the SDKs accept for `archiveResolution`.
pub const ARCHIVE_RESOLUTIONS: [&str; 6] = ["480x640", "640x480", "720x1280", "1280x720", "1080x1920", "1920x1080"];
/// Upper bound for the `maxParticipants` extension.
pub const MAX_PARTICIPANTS_LIMIT: u32 = 10_000;

/// A validated `POST /session/create` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCreateRequest {
    pub media_mode: MediaMode,
    pub archive_mode: ArchiveMode,
    pub archive_name: Option<String>,
    pub archive_resolution: Option<String>,
    pub location: Option<Ipv4Addr>,
    pub e2ee: bool,
    pub max_participants: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

fn invalid(msg: impl Into<String>) -> InvalidRequest {
    InvalidRequest(msg.into())
}

fn parse_bool(field: &str, v: &str) -> Result<bool, InvalidRequest> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(format!("{field} must be true or false")))
    }
}

impl SessionCreateRequest {
    /// Parses an `application/x-www-form-urlencoded` body. Unknown fields are ignored (the
    /// Node SDK forwards caller options verbatim); a repeated known field is refused.
    pub fn from_form(body: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_form_with_default(body, MediaMode::Relayed)
    }

    /// [`SessionCreateRequest::from_form`] with the media mode used when `p2p.preference` is
    /// absent: relayed for OpenTok projects (as OpenTok did), routed for Vonage applications
    /// (the Vonage SDKs' default; the Python SDK sends no field at all without options).
    pub fn from_form_with_default(body: &[u8], default_media: MediaMode) -> Result<Self, InvalidRequest> {
        if std::str::from_utf8(body).is_err() {
            return Err(invalid("request body is not valid UTF-8"));
        }
        const KNOWN: [&str; 7] = [
            "p2p.preference",
            "archiveMode",
            "archiveName",
            "archiveResolution",
            "location",
            "e2ee",
            "maxParticipants",
        ];
        let mut seen: [Option<String>; 7] = Default::default();
        for (k, v) in form_urlencoded::parse(body) {
            if let Some(i) = KNOWN.iter().position(|n| *n == k)
                && seen[i].replace(v.into_owned()).is_some()
            {
                return Err(invalid(format!("{} is given more than once", KNOWN[i])));
            }
        }
        let [p2p, archive_mode, archive_name, archive_resolution, location, e2ee, max_participants] = seen;
        let media_mode = match p2p.as_deref() {
            None => default_media,
            Some("enabled") => MediaMode::Relayed,
            Some("disabled") => MediaMode::Routed,
            Some(_) => return Err(invalid("p2p.preference must be enabled (relayed) or disabled (routed)")),
        };
        let archive_mode = match archive_mode.as_deref() {
            None | Some("manual") => ArchiveMode::Manual,
            Some("always") => ArchiveMode::Always,
            Some(_) => return Err(invalid("archiveMode must be manual or always")),
        };
        if archive_mode == ArchiveMode::Always && media_mode == MediaMode::Relayed {
            return Err(invalid("archiveMode=always requires a routed session (p2p.preference=disabled)"));
        }
        if archive_mode == ArchiveMode::Manual && (archive_name.is_some() || archive_resolution.is_some()) {
            return Err(invalid("archiveName and archiveResolution are only allowed with archiveMode=always"));
        }
        if let Some(n) = &archive_name {
            if n.is_empty() || n.chars().count() > 80 {
                return Err(invalid("archiveName must be 1 to 80 characters"));
            }
            if n.chars().any(char::is_control) {
                return Err(invalid("archiveName must not contain control characters"));
            }
        }
        if let Some(r) = &archive_resolution
            && !ARCHIVE_RESOLUTIONS.contains(&r.as_str())
        {
            return Err(invalid(format!("archiveResolution must be one of {}", ARCHIVE_RESOLUTIONS.join(", "))));
        }
        let location = match location.as_deref() {
            // The Vonage Node SDK sends `location=null` when no location was given.
            None | Some("") | Some("null") => None,
            Some(l) => Some(l.parse::<Ipv4Addr>().map_err(|_| invalid("location must be an IPv4 address"))?),
        };
        let e2ee = e2ee.as_deref().map(|v| parse_bool("e2ee", v)).transpose()?.unwrap_or(false);
        if e2ee && media_mode == MediaMode::Relayed {
            return Err(invalid(
                "e2ee=true requires a routed session (p2p.preference=disabled); relayed media is already end-to-end DTLS-SRTP",
            ));
        }
        let max_participants = match max_participants.as_deref() {
            None | Some("") => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PARTICIPANTS_LIMIT).contains(&n) => Some(n),
                _ => {
                    return Err(invalid(format!(
                        "maxParticipants must be an integer from 1 to {MAX_PARTICIPANTS_LIMIT}"
                    )));
                }
            },
        };
        Ok(SessionCreateRequest {
            media_mode,
            archive_mode,
            archive_name,
            archive_resolution,
            location,
            e2ee,
            max_participants,
        })
    }
}

/// One element of the JSON array answered by `POST /session/create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SessionCreated {
    pub session_id: String,
    pub project_id: String,
    pub partner_id: String,
    pub create_dt: String,
    pub media_server_url: String,
}

impl SessionCreated {
    pub fn new(session_id: &str, api_key: &str, created_ms: u64) -> Self {
        SessionCreated {
            session_id: session_id.to_owned(),
            project_id: api_key.to_owned(),
            partner_id: api_key.to_owned(),
            create_dt: java_date(created_ms / 1000),
            media_server_url: String::new(),
        }
    }

    /// The XML answer for SDKs that do not send `Accept: application/json` (Python ≤ 3.10).
    pub fn to_xml(&self) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sessions><Session><session_id>{}</session_id><partner_id>{}</partner_id><create_dt>{}</create_dt></Session></sessions>"#,
            xml_escape(&self.session_id),
            xml_escape(&self.partner_id),
            xml_escape(&self.create_dt)
        )
    }
}

/// Conclave's view of a session (extension: `GET /v2/project/{apiKey}/session/{sessionId}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub project_id: String,
    pub media_mode: MediaMode,
    pub archive_mode: ArchiveMode,
    pub e2ee: bool,
    pub max_participants: Option<u32>,
    pub location: Option<String>,
    pub created_at: u64,
    pub ended_at: Option<u64>,
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Formats unix seconds like Java's `Date.toString()` in UTC: `Tue Nov 14 22:13:20 UTC 2023`.
pub fn java_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_matches_the_compat_doc() {
        assert_eq!(java_date(1_700_000_000), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn parses_every_observed_sdk_body() {
        let node = SessionCreateRequest::from_form(b"archiveMode=manual&p2p.preference=enabled").unwrap();
        assert_eq!((node.media_mode, node.archive_mode, node.e2ee), (MediaMode::Relayed, ArchiveMode::Manual, false));
        let node = SessionCreateRequest::from_form(
            b"archiveMode=always&location=12.34.56.78&e2ee=true&archiveName=nm&archiveResolution=1280x720&p2p.preference=disabled",
        )
        .unwrap();
        assert_eq!(node.media_mode, MediaMode::Routed);
        assert_eq!(node.location, Some(Ipv4Addr::new(12, 34, 56, 78)));
        assert!(node.e2ee);
        assert_eq!(node.archive_name.as_deref(), Some("nm"));
        let py = SessionCreateRequest::from_form(b"p2p.preference=enabled&archiveMode=manual&e2ee=false").unwrap();
        assert!(!py.e2ee);
        let old_py = SessionCreateRequest::from_form(b"p2p.preference=disabled&archiveMode=manual&e2ee=False").unwrap();
        assert!(!old_py.e2ee);
        // @vonage/video: every field, sorted, with `location=null` when none was given.
        let vonage =
            SessionCreateRequest::from_form(b"archiveMode=manual&location=null&p2p.preference=disabled").unwrap();
        assert_eq!((vonage.media_mode, vonage.location), (MediaMode::Routed, None));
        let python = SessionCreateRequest::from_form_with_default(b"", MediaMode::Routed).unwrap();
        assert_eq!(python.media_mode, MediaMode::Routed);
        assert_eq!(SessionCreateRequest::from_form(b"").unwrap().media_mode, MediaMode::Relayed);
        assert_eq!(SessionCreateRequest::from_form(b"").unwrap().media_mode, MediaMode::Relayed);
        let ext = SessionCreateRequest::from_form(b"p2p.preference=disabled&maxParticipants=10&unknown=1").unwrap();
        assert_eq!(ext.max_participants, Some(10));
    }

    #[test]
    fn refuses_bad_forms_with_a_message() {
        for body in [
            &b"p2p.preference=maybe"[..],
            b"archiveMode=sometimes",
            b"archiveMode=always&p2p.preference=enabled",
            b"archiveMode=always",
            b"archiveName=x",
            b"p2p.preference=disabled&archiveMode=always&archiveResolution=1x1",
            b"location=999.1.1.1",
            b"e2ee=yes",
            b"e2ee=true",
            b"p2p.preference=disabled&maxParticipants=0",
            b"p2p.preference=disabled&maxParticipants=-3",
            b"p2p.preference=disabled&maxParticipants=99999999999",
            b"p2p.preference=enabled&p2p.preference=disabled",
            b"p2p.preference=\xff\xfe",
            b"p2p.preference=disabled&archiveMode=always&archiveName=a%00b",
        ] {
            let err = SessionCreateRequest::from_form(body).unwrap_err();
            assert!(!err.0.is_empty());
        }
    }

    #[test]
    fn xml_answer_is_what_python_310_parses() {
        let s = SessionCreated::new("1_MX4", "47000001", 1_700_000_000_000);
        assert_eq!(
            s.to_xml(),
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sessions><Session><session_id>1_MX4</session_id><partner_id>47000001</partner_id><create_dt>Tue Nov 14 22:13:20 UTC 2023</create_dt></Session></sessions>"#
        );
    }
}
