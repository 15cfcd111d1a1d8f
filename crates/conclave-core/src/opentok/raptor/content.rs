//! Typed `content` objects of Raptor messages (protocol reference §6.3, §6.4, §7.2 to §7.8).
//!
//! Owns: the JSON field names (camelCase, exactly as the client spells them), the closed value
//! sets (`P2P`/`MANTIS`, `audio`/`video`/`data`, `camera`/`screen`/`custom`, `cover`/`contain`,
//! `offer`/`answer`/`pranswer`) and the bounds on every field. Must not touch: what a server
//! does with a value (permissions, relaying, stream state).
//!
//! Unknown keys are ignored when parsing and never written back. Every optional field is left
//! out when it is `None`.

use super::{
    MAX_CANDIDATE_BYTES, MAX_DATA_BYTES, MAX_EXCLUSION_ITEMS, MAX_FRAME_RATE, MAX_LIST_ITEMS, MAX_SDP_BYTES,
    MAX_SIGNAL_DATA_CHARS, MAX_SIGNAL_TYPE_CHARS, MAX_TEXT_BYTES, RaptorError, check_id, check_items, check_len,
    is_id_byte,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which PeerConnection a JSEP message is about: relayed (`P2P`) or through the media server
/// (`MANTIS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceStreamId {
    #[serde(rename = "P2P")]
    P2p,
    #[serde(rename = "MANTIS")]
    Mantis,
}

impl SourceStreamId {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStreamId::P2p => "P2P",
            SourceStreamId::Mantis => "MANTIS",
        }
    }

    pub fn parse(s: &str) -> Option<SourceStreamId> {
        match s {
            "P2P" => Some(SourceStreamId::P2p),
            "MANTIS" => Some(SourceStreamId::Mantis),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    Audio,
    Video,
    Data,
}

/// The video channel's `source`, which becomes `stream.videoType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoSource {
    Camera,
    Screen,
    Custom,
}

/// The video channel's `fitMode`, which becomes `stream.defaultFitMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FitMode {
    Cover,
    Contain,
}

/// The `type` of a session description; it always equals the Raptor method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
}

impl SdpType {
    pub fn method(self) -> super::Method {
        match self {
            SdpType::Offer => super::Method::Offer,
            SdpType::Answer => super::Method::Answer,
            SdpType::Pranswer => super::Method::Pranswer,
        }
    }
}

/// `create B/connection/{c}` (join). The token is in the Rumor header, not here.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// For example `js-2.35.2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// `forceMute`, `amr`, `spc`, `migrate`, `renegotiation`, `e2ee` (older: `adaptive`,
    /// `peerRegeneration`). Kept as strings: unknown ones are not an error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_events_suppressed: Option<bool>,
}

impl ConnectContent {
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        opt_text("userAgent", &self.user_agent)?;
        opt_text("clientVersion", &self.client_version)?;
        check_items("capabilities", &self.capabilities, MAX_LIST_ITEMS)?;
        self.capabilities.iter().try_for_each(|c| check_len("capability", c, MAX_TEXT_BYTES))
    }
}

/// `signal` content: both keys optional (§7.8). `data` is usually a string, but any JSON value
/// is carried as-is; the limit applies to its JSON form.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SignalContent {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub signal_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl SignalContent {
    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        if let Some(t) = &self.signal_type
            && (t.chars().count() > MAX_SIGNAL_TYPE_CHARS || !t.bytes().all(is_id_byte))
        {
            return Err(RaptorError::InvalidSignalType);
        }
        if let Some(data) = &self.data {
            let len = data.to_string().encode_utf16().count();
            if len > MAX_SIGNAL_DATA_CHARS {
                return Err(RaptorError::SignalDataTooLong { len });
            }
        }
        Ok(())
    }
}

/// The attributes of a channel, as they appear in stream and subscriber `channel` lists and in
/// channel `update`/`updated` messages. Publisher fields come first, then subscriber
/// preferences.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Why `active` changed, for example `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Degrees, for example 0 or 90.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rate")]
    pub frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<VideoSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit_mode: Option<FitMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_warning: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restrict_frame_rate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rate")]
    pub preferred_frame_rate: Option<f64>,
    /// Caption category (the client sends `''` right after subscribing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<String>,
}

impl ChannelAttributes {
    /// True when no attribute is set (an update that changes nothing).
    pub fn is_empty(&self) -> bool {
        *self == ChannelAttributes::default()
    }

    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        opt_text("activeReason", &self.active_reason)?;
        opt_text("category", &self.category)?;
        if let Some(id) = &self.subscriber_id {
            check_id("subscriberId", id)?;
        }
        for (field, rate) in [("frameRate", self.frame_rate), ("preferredFrameRate", self.preferred_frame_rate)] {
            if rate.is_some_and(|r| !(0.0..=MAX_FRAME_RATE).contains(&r)) {
                return Err(RaptorError::OutOfRange { field });
            }
        }
        Ok(())
    }
}

/// Writes whole frame rates as integers (`30`, as the client sends them), others as floats.
fn rate<S: serde::Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match *value {
        Some(r) if r.fract() == 0.0 && (0.0..=MAX_FRAME_RATE).contains(&r) => serializer.serialize_u64(r as u64),
        Some(r) => serializer.serialize_f64(r),
        None => serializer.serialize_none(),
    }
}

/// One entry of a `channel` list: `{id, type, …attributes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamChannel {
    /// `audio1`, `video1`, `caption1`, `downlinkStats1`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ChannelType,
    #[serde(flatten)]
    pub attributes: ChannelAttributes,
}

impl StreamChannel {
    pub fn new(id: impl Into<String>, kind: ChannelType) -> Self {
        StreamChannel { id: id.into(), kind, attributes: ChannelAttributes::default() }
    }

    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        check_id("channel id", &self.id)?;
        self.attributes.validate()
    }
}

/// `customProperties` of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initials: Option<String>,
}

/// `create B/stream/{st}` (publish). The stream object the server broadcasts is this plus the
/// owner's connection and `creationTime` (see `server::StreamObject`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamCreateContent {
    /// The stream ID again (the client picks it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_audio_fallback_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_audio_fallback_enabled: Option<bool>,
    /// Clients before 2.35 send this single flag instead of the two above (§12.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_fallback_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel: Vec<StreamChannel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_bitrate: Option<u64>,
    /// Only in adaptive or migration flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_stream_id: Option<SourceStreamId>,
}

impl StreamCreateContent {
    /// The channel with `id`.
    pub fn channel(&self, id: &str) -> Option<&StreamChannel> {
        self.channel.iter().find(|c| c.id == id)
    }

    /// The first channel of `kind` (the client derives `hasAudio`/`hasVideo` from these, §7.3).
    pub fn channel_of(&self, kind: ChannelType) -> Option<&StreamChannel> {
        self.channel.iter().find(|c| c.kind == kind)
    }

    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        if let Some(id) = &self.id {
            check_id("id", id)?;
        }
        opt_text("name", &self.name)?;
        if let Some(props) = &self.custom_properties {
            opt_text("initials", &props.initials)?;
        }
        validate_channels(&self.channel)
    }
}

/// `create B/stream/{st}/subscriber/{sub}` (subscribe).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriberCreateContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subscribing connection's ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `DTLS_SRTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_management_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_support: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtcp_mux_support: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel: Vec<StreamChannel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_stream_id: Option<SourceStreamId>,
}

impl SubscriberCreateContent {
    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        if let Some(id) = &self.id {
            check_id("id", id)?;
        }
        if let Some(c) = &self.connection {
            check_id("connection", c)?;
        }
        opt_text("keyManagementMethod", &self.key_management_method)?;
        validate_channels(&self.channel)
    }
}

/// `delete` content for streams and subscribers: `{}` or `{sourceStreamId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeleteContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_stream_id: Option<SourceStreamId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MuteReason {
    Mute,
}

/// A force-mute request, `update B/stream/{st}` or `update B`:
/// `{reason:'mute', channels:['audio'], active, locked, exclusion?}`. `reason` must be `mute`.
/// Clients before 2.22 send `active:false` on the per-stream form to mean "mute" (§12.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MuteWire", into = "MuteWire")]
pub struct MuteRequest {
    pub channels: Vec<ChannelType>,
    pub active: bool,
    pub locked: Option<bool>,
    /// Session-wide form only: stream IDs left unmuted.
    pub exclusion: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MuteWire {
    reason: MuteReason,
    #[serde(default)]
    channels: Vec<ChannelType>,
    active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exclusion: Option<Vec<String>>,
}

impl From<MuteWire> for MuteRequest {
    fn from(w: MuteWire) -> Self {
        MuteRequest { channels: w.channels, active: w.active, locked: w.locked, exclusion: w.exclusion }
    }
}

impl From<MuteRequest> for MuteWire {
    fn from(m: MuteRequest) -> Self {
        MuteWire {
            reason: MuteReason::Mute,
            channels: m.channels,
            active: m.active,
            locked: m.locked,
            exclusion: m.exclusion,
        }
    }
}

impl MuteRequest {
    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        check_items("channels", &self.channels, MAX_LIST_ITEMS)?;
        if let Some(ex) = &self.exclusion {
            check_items("exclusion", ex, MAX_EXCLUSION_ITEMS)?;
            ex.iter().try_for_each(|id| check_id("exclusion", id))?;
        }
        Ok(())
    }
}

/// The candidate part of a `candidate` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:…` line; empty for end-of-candidates.
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex", skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u32>,
}

impl IceCandidate {
    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        check_len("candidate", &self.candidate, MAX_CANDIDATE_BYTES)?;
        opt_text("sdpMid", &self.sdp_mid)
    }
}

/// `data` content (captions, statistics): `{type:'data', data: <JSON string>}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DataContent {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl DataContent {
    pub(crate) fn validate(&self) -> Result<(), RaptorError> {
        opt_text("type", &self.data_type)?;
        if let Some(d) = &self.data {
            check_len("data", d, MAX_DATA_BYTES)?;
        }
        Ok(())
    }
}

/// The JSEP part every offer/answer/pranswer/candidate carries: `{peerId, sourceStreamId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsepWire {
    pub peer_id: String,
    pub source_stream_id: SourceStreamId,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub sdp_type: Option<SdpType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex", skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u32>,
}

pub(crate) fn check_sdp(sdp: &str) -> Result<(), RaptorError> {
    check_len("sdp", sdp, MAX_SDP_BYTES)
}

fn opt_text(field: &'static str, value: &Option<String>) -> Result<(), RaptorError> {
    value.as_deref().map_or(Ok(()), |v| check_len(field, v, MAX_TEXT_BYTES))
}

fn validate_channels(channels: &[StreamChannel]) -> Result<(), RaptorError> {
    check_items("channel", channels, MAX_LIST_ITEMS)?;
    channels.iter().try_for_each(StreamChannel::validate)
}

/// Deserializes `content` into `T`, naming the message in the error.
pub(crate) fn from_content<T: serde::de::DeserializeOwned>(
    what: &'static str,
    content: serde_json::Map<String, Value>,
) -> Result<T, RaptorError> {
    serde_json::from_value(Value::Object(content))
        .map_err(|e| RaptorError::InvalidContent { what, detail: super::clip(&e.to_string()) })
}

/// Serializes a content struct. The types here only hold strings, numbers, booleans and
/// `Value`s, so this cannot fail; a `null` fallback keeps it panic-free regardless.
pub(crate) fn to_content<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
