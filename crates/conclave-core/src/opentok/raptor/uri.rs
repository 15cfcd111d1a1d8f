//! The Raptor URI grammar (protocol reference §6.2): `/v2/partner/{k}/session/{s}` followed by
//! name/value pairs, typed here as a [`Resource`].
//!
//! Owns: parsing and printing URIs, and the rule that every ID segment is 1 to 255 characters
//! of `[A-Za-z0-9-._~]` (so an ID can never smuggle a `/`, a query or an escape into a URI the
//! server builds later). Must not touch: whether the partner, session or IDs exist or belong to
//! anyone; the caller checks that.

use super::content::SourceStreamId;
use super::{MAX_URI_BYTES, is_valid_id};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI is {len} bytes; the limit is {MAX_URI_BYTES}")]
    TooLong { len: usize },
    #[error("URI does not start with /v2/partner/{{k}}/session/{{s}}")]
    BadPrefix,
    #[error("URI has an empty segment")]
    EmptySegment,
    #[error("URI segment {index} is not a valid ID")]
    InvalidId { index: usize },
    #[error("URI names an unknown resource")]
    UnknownResource,
    #[error("URI names an unknown source (expected P2P or MANTIS)")]
    UnknownSource,
}

/// `B = /v2/partner/{partner_id}/session/{session_id}`, the base of every URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionPath {
    /// The API key ("partner id").
    pub partner_id: String,
    pub session_id: String,
}

impl SessionPath {
    pub fn new(partner_id: impl Into<String>, session_id: impl Into<String>) -> Self {
        SessionPath { partner_id: partner_id.into(), session_id: session_id.into() }
    }

    /// The URI of `resource` in this session.
    pub fn uri(&self, resource: Resource) -> RaptorUri {
        RaptorUri { session: self.clone(), resource }
    }

    /// The address a client SUBSCRIBEs to: `B` itself.
    pub fn address(&self) -> String {
        self.uri(Resource::Session).to_string()
    }
}

/// What a URI names, below `B`. Field names follow the client's `params`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `B`
    Session,
    /// `B/connection/{c}`
    Connection { connection: String },
    /// `B/connection/{c}/signal/{id}`: a signal to one connection.
    ConnectionSignal { connection: String, signal: String },
    /// `B/signal/{id}`: a signal to everyone.
    Signal { signal: String },
    /// `B/stream/{st}`
    Stream { stream: String },
    /// `B/stream/{st}/channel/{ch}` (resource `stream_channel`)
    StreamChannel { stream: String, channel: String },
    /// `B/stream/{st}/channel/{ch}/data/{id}`
    StreamChannelData { stream: String, channel: String, data: String },
    /// `B/stream/{st}/source/{P2P|MANTIS}` (adaptive sessions)
    StreamSource { stream: String, source: SourceStreamId },
    /// `B/stream/{st}/subscriber/{sub}`
    Subscriber { stream: String, subscriber: String },
    /// `B/stream/{st}/subscriber/{sub}/channel/{ch}` (resource `subscriber_channel`)
    SubscriberChannel { stream: String, subscriber: String, channel: String },
    /// `B/stream/{st}/subscriber/{sub}/channel/{ch}/data/{id}` (downlink statistics)
    SubscriberChannelData { stream: String, subscriber: String, channel: String, data: String },
    /// `B/archive/{a}`
    Archive { archive: String },
    /// `B/notification/{id}`
    Notification { notification: String },
    /// `B/migrate` (the one name without a value)
    Migrate,
}

impl Resource {
    /// The resource name the client derives (the last name, with the two channel special cases).
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Session => "session",
            Resource::Connection { .. } => "connection",
            Resource::ConnectionSignal { .. } | Resource::Signal { .. } => "signal",
            Resource::Stream { .. } => "stream",
            Resource::StreamChannel { .. } => "stream_channel",
            Resource::StreamChannelData { .. } | Resource::SubscriberChannelData { .. } => "data",
            Resource::StreamSource { .. } => "source",
            Resource::Subscriber { .. } => "subscriber",
            Resource::SubscriberChannel { .. } => "subscriber_channel",
            Resource::Archive { .. } => "archive",
            Resource::Notification { .. } => "notification",
            Resource::Migrate => "migrate",
        }
    }

    /// The `{st}` of every URI below `B/stream/{st}`.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Resource::Stream { stream }
            | Resource::StreamChannel { stream, .. }
            | Resource::StreamChannelData { stream, .. }
            | Resource::StreamSource { stream, .. }
            | Resource::Subscriber { stream, .. }
            | Resource::SubscriberChannel { stream, .. }
            | Resource::SubscriberChannelData { stream, .. } => Some(stream),
            _ => None,
        }
    }

    /// The `{sub}` of every URI below `B/stream/{st}/subscriber/{sub}`.
    pub fn subscriber(&self) -> Option<&str> {
        match self {
            Resource::Subscriber { subscriber, .. }
            | Resource::SubscriberChannel { subscriber, .. }
            | Resource::SubscriberChannelData { subscriber, .. } => Some(subscriber),
            _ => None,
        }
    }

    /// The `{c}` of `B/connection/{c}` and `B/connection/{c}/signal/{id}`.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Resource::Connection { connection } | Resource::ConnectionSignal { connection, .. } => Some(connection),
            _ => None,
        }
    }

    /// The `{ch}` of every channel URI.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Resource::StreamChannel { channel, .. }
            | Resource::StreamChannelData { channel, .. }
            | Resource::SubscriberChannel { channel, .. }
            | Resource::SubscriberChannelData { channel, .. } => Some(channel),
            _ => None,
        }
    }

    fn from_segments(segments: &[&str]) -> Result<Resource, UriError> {
        let s = |v: &&str| (*v).to_owned();
        Ok(match segments {
            [] => Resource::Session,
            ["connection", c] => Resource::Connection { connection: s(c) },
            ["connection", c, "signal", id] => Resource::ConnectionSignal { connection: s(c), signal: s(id) },
            ["signal", id] => Resource::Signal { signal: s(id) },
            ["stream", st] => Resource::Stream { stream: s(st) },
            ["stream", st, "channel", ch] => Resource::StreamChannel { stream: s(st), channel: s(ch) },
            ["stream", st, "channel", ch, "data", id] => {
                Resource::StreamChannelData { stream: s(st), channel: s(ch), data: s(id) }
            }
            ["stream", st, "source", src] => Resource::StreamSource {
                stream: s(st),
                source: SourceStreamId::parse(src).ok_or(UriError::UnknownSource)?,
            },
            ["stream", st, "subscriber", sub] => Resource::Subscriber { stream: s(st), subscriber: s(sub) },
            ["stream", st, "subscriber", sub, "channel", ch] => {
                Resource::SubscriberChannel { stream: s(st), subscriber: s(sub), channel: s(ch) }
            }
            ["stream", st, "subscriber", sub, "channel", ch, "data", id] => {
                Resource::SubscriberChannelData { stream: s(st), subscriber: s(sub), channel: s(ch), data: s(id) }
            }
            ["archive", a] => Resource::Archive { archive: s(a) },
            ["notification", id] => Resource::Notification { notification: s(id) },
            ["migrate"] => Resource::Migrate,
            _ => return Err(UriError::UnknownResource),
        })
    }

    fn write_segments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Session => Ok(()),
            Resource::Connection { connection } => write!(f, "/connection/{connection}"),
            Resource::ConnectionSignal { connection, signal } => write!(f, "/connection/{connection}/signal/{signal}"),
            Resource::Signal { signal } => write!(f, "/signal/{signal}"),
            Resource::Stream { stream } => write!(f, "/stream/{stream}"),
            Resource::StreamChannel { stream, channel } => write!(f, "/stream/{stream}/channel/{channel}"),
            Resource::StreamChannelData { stream, channel, data } => {
                write!(f, "/stream/{stream}/channel/{channel}/data/{data}")
            }
            Resource::StreamSource { stream, source } => write!(f, "/stream/{stream}/source/{}", source.as_str()),
            Resource::Subscriber { stream, subscriber } => write!(f, "/stream/{stream}/subscriber/{subscriber}"),
            Resource::SubscriberChannel { stream, subscriber, channel } => {
                write!(f, "/stream/{stream}/subscriber/{subscriber}/channel/{channel}")
            }
            Resource::SubscriberChannelData { stream, subscriber, channel, data } => {
                write!(f, "/stream/{stream}/subscriber/{subscriber}/channel/{channel}/data/{data}")
            }
            Resource::Archive { archive } => write!(f, "/archive/{archive}"),
            Resource::Notification { notification } => write!(f, "/notification/{notification}"),
            Resource::Migrate => f.write_str("/migrate"),
        }
    }
}

/// A parsed Raptor URI: the session it is in and what it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RaptorUri {
    pub session: SessionPath,
    pub resource: Resource,
}

impl RaptorUri {
    /// Parses `/v2/partner/{k}/session/{s}[/{name}/{value}…]`. Names are case-sensitive; every
    /// value must be a valid ID; no empty segments, query or fragment.
    pub fn parse(uri: &str) -> Result<RaptorUri, UriError> {
        if uri.len() > MAX_URI_BYTES {
            return Err(UriError::TooLong { len: uri.len() });
        }
        let rest = uri.strip_prefix("/v2/").ok_or(UriError::BadPrefix)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(UriError::EmptySegment);
        }
        let [partner_word, partner_id, session_word, session_id, tail @ ..] = segments.as_slice() else {
            return Err(UriError::BadPrefix);
        };
        if *partner_word != "partner" || *session_word != "session" {
            return Err(UriError::BadPrefix);
        }
        // Values sit at odd offsets from "partner"; names are matched by `from_segments`.
        for (index, segment) in segments.iter().enumerate() {
            if index % 2 == 1 && !is_valid_id(segment) {
                return Err(UriError::InvalidId { index });
            }
        }
        let resource = Resource::from_segments(tail)?;
        Ok(RaptorUri { session: SessionPath::new(*partner_id, *session_id), resource })
    }
}

impl fmt::Display for RaptorUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/v2/partner/{}/session/{}", self.session.partner_id, self.session.session_id)?;
        self.resource.write_segments(f)
    }
}
