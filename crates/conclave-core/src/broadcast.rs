//! Live-streaming broadcast and Audio Connector wire types (OpenTok's `/broadcast` and
//! `/connect`): the start bodies as the official SDKs send them and their validation, the
//! Broadcast object, the stream patch, and the Audio Connector's reply.
//!
//! Owns: what these bodies look like and which values are valid. Must not touch: URLs'
//! reachability (the SSRF policy is applied by the server, which resolves names), media or
//! the registry of running broadcasts.

use crate::archive::{ArchiveLayout, StreamMode, parse_resolution};
use crate::wire::{ARCHIVE_RESOLUTIONS, InvalidRequest};
use serde::{Deserialize, Serialize};

fn invalid(msg: impl Into<String>) -> InvalidRequest {
    InvalidRequest(msg.into())
}

/// OpenTok's limits: `maxDuration` in seconds, default 4 hours; at most five RTMP outputs.
pub const MIN_DURATION_S: u64 = 60;
pub const MAX_DURATION_S: u64 = 36_000;
pub const DEFAULT_DURATION_S: u64 = 14_400;
pub const MAX_RTMP_OUTPUTS: usize = 5;
/// The default video bitrate of a broadcast (bits per second).
pub const DEFAULT_BITRATE: u64 = 2_000_000;

/// `POST /v2/project/{apiKey}/broadcast` (unknown keys are ignored: Node passes its options
/// through).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastStartBody {
    pub session_id: Option<String>,
    pub layout: Option<ArchiveLayout>,
    pub max_duration: Option<i64>,
    pub max_bitrate: Option<i64>,
    pub resolution: Option<String>,
    pub multi_broadcast_tag: Option<String>,
    pub stream_mode: Option<StreamMode>,
    pub has_audio: Option<bool>,
    pub has_video: Option<bool>,
    pub outputs: Option<OutputsBody>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OutputsBody {
    pub hls: Option<HlsBody>,
    pub rtmp: Option<Vec<RtmpBody>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HlsBody {
    #[serde(default)]
    pub dvr: Option<bool>,
    #[serde(default)]
    pub low_latency: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RtmpBody {
    pub id: Option<String>,
    pub server_url: Option<String>,
    pub stream_name: Option<String>,
}

/// HLS settings of a validated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HlsSettings {
    pub dvr: bool,
    pub low_latency: bool,
}

/// One RTMP output of a validated request (the URL's reachability is checked later).
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpOutput {
    pub id: String,
    pub server_url: String,
    pub stream_name: String,
}

impl std::fmt::Debug for RtmpOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The stream name is the stream key: never printed.
        f.debug_struct("RtmpOutput").field("id", &self.id).field("stream_name", &"<redacted>").finish()
    }
}

/// A validated start request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastStartRequest {
    pub session_id: String,
    pub layout: ArchiveLayout,
    pub max_duration_s: u64,
    pub max_bitrate: u64,
    pub resolution: String,
    pub width: u32,
    pub height: u32,
    pub multi_broadcast_tag: Option<String>,
    pub stream_mode: StreamMode,
    pub has_audio: bool,
    pub has_video: bool,
    pub hls: Option<HlsSettings>,
    pub rtmp: Vec<RtmpOutput>,
}

fn clean_text(field: &str, v: &str, max: usize) -> Result<(), InvalidRequest> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(invalid(format!("{field} must be 1 to {max} characters without control characters")));
    }
    Ok(())
}

impl BroadcastStartBody {
    pub fn validate(self) -> Result<BroadcastStartRequest, InvalidRequest> {
        let session_id = self.session_id.filter(|s| !s.is_empty()).ok_or_else(|| invalid("sessionId is required"))?;
        let has_audio = self.has_audio.unwrap_or(true);
        let has_video = self.has_video.unwrap_or(true);
        if !has_audio && !has_video {
            return Err(invalid("hasAudio and hasVideo cannot both be false"));
        }
        let resolution = self.resolution.unwrap_or_else(|| "640x480".to_owned());
        if !ARCHIVE_RESOLUTIONS.contains(&resolution.as_str()) {
            return Err(invalid(format!("resolution must be one of {}", ARCHIVE_RESOLUTIONS.join(", "))));
        }
        let (width, height) = parse_resolution(&resolution).ok_or_else(|| invalid("bad resolution"))?;
        let layout =
            self.layout.unwrap_or(ArchiveLayout { kind: "bestFit".into(), stylesheet: None, screenshare_type: None });
        layout.validate()?;
        let max_duration_s = match self.max_duration {
            None => DEFAULT_DURATION_S,
            Some(d) if (MIN_DURATION_S as i64..=MAX_DURATION_S as i64).contains(&d) => d as u64,
            Some(_) => {
                return Err(invalid(format!(
                    "maxDuration must be between {MIN_DURATION_S} and {MAX_DURATION_S} seconds"
                )));
            }
        };
        let max_bitrate = match self.max_bitrate {
            None => DEFAULT_BITRATE,
            Some(b) if (100_000..=6_000_000).contains(&b) => b as u64,
            Some(_) => return Err(invalid("maxBitrate must be between 100000 and 6000000")),
        };
        if let Some(t) = &self.multi_broadcast_tag {
            clean_text("multiBroadcastTag", t, 200)?;
        }
        let outputs =
            self.outputs.ok_or_else(|| invalid("outputs is required: give outputs.hls, outputs.rtmp or both"))?;
        let hls = outputs
            .hls
            .map(|h| HlsSettings { dvr: h.dvr.unwrap_or(false), low_latency: h.low_latency.unwrap_or(false) });
        if hls.is_some_and(|h| h.dvr && h.low_latency) {
            return Err(invalid("outputs.hls cannot set both dvr and lowLatency"));
        }
        let rtmp_in = outputs.rtmp.unwrap_or_default();
        if rtmp_in.len() > MAX_RTMP_OUTPUTS {
            return Err(invalid(format!("at most {MAX_RTMP_OUTPUTS} RTMP outputs")));
        }
        if hls.is_none() && rtmp_in.is_empty() {
            return Err(invalid("outputs must name an HLS output, an RTMP output or both"));
        }
        let mut rtmp = Vec::new();
        for (i, r) in rtmp_in.into_iter().enumerate() {
            let server_url = r.server_url.ok_or_else(|| invalid(format!("outputs.rtmp[{i}].serverUrl is required")))?;
            let stream_name =
                r.stream_name.ok_or_else(|| invalid(format!("outputs.rtmp[{i}].streamName is required")))?;
            let id = r.id.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("rtmp{i}"));
            clean_text("outputs.rtmp[].id", &id, 200)?;
            clean_text("outputs.rtmp[].streamName", &stream_name, 2000)?;
            check_rtmp_url(&server_url)?;
            if rtmp.iter().any(|o: &RtmpOutput| o.id == id) {
                return Err(invalid("outputs.rtmp ids must be distinct"));
            }
            rtmp.push(RtmpOutput { id, server_url, stream_name });
        }
        Ok(BroadcastStartRequest {
            session_id,
            layout,
            max_duration_s,
            max_bitrate,
            resolution,
            width,
            height,
            multi_broadcast_tag: self.multi_broadcast_tag,
            stream_mode: self.stream_mode.unwrap_or_default(),
            has_audio,
            has_video,
            hls,
            rtmp,
        })
    }
}

/// The form of an RTMP server URL: `rtmp://` or `rtmps://`, a host, no credentials, no
/// query or fragment (the stream key goes in `streamName`).
pub fn check_rtmp_url(url: &str) -> Result<(), InvalidRequest> {
    let bad = || invalid("outputs.rtmp[].serverUrl must be an rtmp:// or rtmps:// URL with a host and no credentials");
    if url.len() > 2000 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let rest = url.strip_prefix("rtmps://").or_else(|| url.strip_prefix("rtmp://")).ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || rest.contains('?') || rest.contains('#') {
        return Err(bad());
    }
    Ok(())
}

/// Each RTMP output as the Broadcast object shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RtmpJson {
    pub id: String,
    pub server_url: String,
    pub stream_name: String,
    /// `connecting`, `live`, `offline` or `error`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastUrls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<String>,
    /// `connecting`, `ready`, `live`, `ended` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls_status: Option<String>,
    pub rtmp: Vec<RtmpJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastStreamJson {
    pub stream_id: String,
    pub has_audio: bool,
    pub has_video: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BroadcastSettings {
    pub hls: HlsBody,
}

/// The Broadcast object that start, get, list and stop answer with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastJson {
    pub id: String,
    pub session_id: String,
    pub project_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub resolution: String,
    /// `started` or `stopped`.
    pub status: String,
    pub broadcast_urls: BroadcastUrls,
    pub max_duration: u64,
    pub max_bitrate: u64,
    pub stream_mode: StreamMode,
    pub has_audio: bool,
    pub has_video: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_broadcast_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<BroadcastSettings>,
    pub streams: Vec<BroadcastStreamJson>,
    /// Extension: why a broadcast stopped (`maxDuration`, `session ended`, `stopped`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `GET …/broadcast` reply.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BroadcastList {
    pub count: u64,
    pub items: Vec<BroadcastJson>,
}

/// `POST /v2/project/{apiKey}/connect`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectBody {
    pub session_id: Option<String>,
    pub token: Option<String>,
    pub websocket: Option<WebsocketBody>,
}

#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebsocketBody {
    pub uri: Option<String>,
    pub streams: Option<Vec<String>>,
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub audio_rate: Option<u32>,
    pub bidirectional: Option<bool>,
}

impl std::fmt::Debug for WebsocketBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers carry the customer's credentials: never printed.
        f.debug_struct("WebsocketBody").field("streams", &self.streams).field("audio_rate", &self.audio_rate).finish()
    }
}

/// A validated Audio Connector request.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub session_id: String,
    pub token: String,
    pub uri: String,
    /// `None`: every stream of the session, mixed.
    pub streams: Option<Vec<String>>,
    /// String values only, sent in the first message.
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub audio_rate: u32,
    pub bidirectional: bool,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRequest").field("session_id", &self.session_id).field("streams", &self.streams).finish()
    }
}

/// Largest `headers` object (its JSON) and stream list of an Audio Connector request.
pub const MAX_CONNECT_HEADERS_BYTES: usize = 8192;
pub const MAX_CONNECT_STREAMS: usize = 50;

impl ConnectBody {
    pub fn validate(self) -> Result<ConnectRequest, InvalidRequest> {
        let session_id = self.session_id.filter(|s| !s.is_empty()).ok_or_else(|| invalid("sessionId is required"))?;
        let token = self.token.filter(|s| !s.is_empty()).ok_or_else(|| invalid("token is required"))?;
        let ws = self.websocket.ok_or_else(|| invalid("websocket is required"))?;
        let uri = ws.uri.filter(|s| !s.is_empty()).ok_or_else(|| invalid("websocket.uri is required"))?;
        if !(uri.starts_with("wss://") || uri.starts_with("ws://")) || uri.len() > 2000 {
            return Err(invalid("websocket.uri must be a ws:// or wss:// URL"));
        }
        let audio_rate = ws.audio_rate.unwrap_or(16_000);
        if !matches!(audio_rate, 8_000 | 16_000) {
            return Err(invalid("websocket.audioRate must be 8000 or 16000"));
        }
        let headers = ws.headers.unwrap_or_default();
        if serde_json::to_vec(&headers).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_CONNECT_HEADERS_BYTES {
            return Err(invalid(format!("websocket.headers is larger than {MAX_CONNECT_HEADERS_BYTES} bytes")));
        }
        if headers.values().any(|v| !v.is_string()) {
            return Err(invalid("websocket.headers values must be strings"));
        }
        if let Some(s) = &ws.streams
            && (s.is_empty() || s.len() > MAX_CONNECT_STREAMS || s.iter().any(|id| id.is_empty() || id.len() > 200))
        {
            return Err(invalid(format!("websocket.streams must list 1 to {MAX_CONNECT_STREAMS} stream IDs")));
        }
        Ok(ConnectRequest {
            session_id,
            token,
            uri,
            streams: ws.streams,
            headers,
            audio_rate,
            bidirectional: ws.bidirectional.unwrap_or(false),
        })
    }
}

/// A broadcast or audio-connection ID: 32 random hex digits, prefixed in cluster mode with
/// the running node's name (`n{hex(node)}-`), so that any node can forward a call naming it
/// to the node that runs it.
pub fn make_id(node: Option<&str>, random_hex: &str) -> String {
    match node {
        Some(n) => format!("n{}-{random_hex}", hex_encode(n.as_bytes())),
        None => random_hex.to_owned(),
    }
}

/// The node an ID of [`make_id`] names (`None` for a single node's IDs or anything else).
pub fn node_of(id: &str) -> Option<String> {
    let (node, rest) = id.strip_prefix('n')?.split_once('-')?;
    if rest.is_empty() || node.is_empty() || node.len() % 2 != 0 || node.len() > 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..node.len()).step_by(2).map(|i| u8::from_str_radix(node.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The Audio Connector's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectJson {
    pub id: String,
    pub connection_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<BroadcastStartRequest, InvalidRequest> {
        serde_json::from_value::<BroadcastStartBody>(v).unwrap().validate()
    }

    #[test]
    fn start_defaults_and_limits() {
        let r = body(serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}})).unwrap();
        assert_eq!((r.width, r.height, r.max_duration_s), (640, 480, DEFAULT_DURATION_S));
        assert_eq!(r.layout.kind, "bestFit");
        assert_eq!(r.hls, Some(HlsSettings::default()));
        for bad in [
            serde_json::json!({"sessionId": "s"}),
            serde_json::json!({"sessionId": "s", "outputs": {}}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {"dvr": true, "lowLatency": true}}}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "maxDuration": 59}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "maxDuration": 36001}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "maxBitrate": 99}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "resolution": "641x480"}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "layout": {"type": "custom"}}),
            serde_json::json!({"sessionId": "s", "outputs": {"rtmp": [{"serverUrl": "http://x/app", "streamName": "k"}]}}),
            serde_json::json!({"sessionId": "s", "outputs": {"rtmp": [{"serverUrl": "rtmp://u:p@x/app", "streamName": "k"}]}}),
            serde_json::json!({"sessionId": "s", "outputs": {"rtmp": [{"serverUrl": "rtmp://x/app"}]}}),
            serde_json::json!({"sessionId": "s", "outputs": {"rtmp": [
                {"id": "a", "serverUrl": "rtmp://x/app", "streamName": "k"},
                {"id": "a", "serverUrl": "rtmp://y/app", "streamName": "k"}]}}),
            serde_json::json!({"sessionId": "s", "outputs": {"hls": {}}, "layout": {"type": "custom", "stylesheet": "x".repeat(10_001)}}),
        ] {
            assert!(body(bad.clone()).is_err(), "{bad}");
        }
        let six: Vec<_> = (0..6)
            .map(|i| serde_json::json!({"id": format!("o{i}"), "serverUrl": "rtmp://x/a", "streamName": "k"}))
            .collect();
        assert!(body(serde_json::json!({"sessionId": "s", "outputs": {"rtmp": six}})).is_err());
        let r = body(serde_json::json!({"sessionId": "s", "outputs": {"rtmp": [{"serverUrl": "rtmps://x:443/app", "streamName": "key"}]}})).unwrap();
        assert_eq!(r.rtmp[0].id, "rtmp0");
        assert!(!format!("{:?}", r.rtmp[0]).contains("key\""), "the stream key is never printed");
    }

    #[test]
    fn ids_name_their_node() {
        let id = make_id(Some("node-a"), "0123456789abcdef0123456789abcdef");
        assert_eq!(id, "n6e6f64652d61-0123456789abcdef0123456789abcdef");
        assert_eq!(node_of(&id).as_deref(), Some("node-a"));
        assert_eq!(make_id(None, "abc"), "abc");
        for plain in ["0123456789abcdef", "n-x", "nzz-1", "n6e6-", "", "n6e6f64652d6-1"] {
            assert_eq!(node_of(plain), None, "{plain}");
        }
    }

    #[test]
    fn connect_validation() {
        let ok = |v: serde_json::Value| serde_json::from_value::<ConnectBody>(v).unwrap().validate();
        let r = ok(serde_json::json!({"sessionId": "s", "token": "t", "websocket": {"uri": "wss://x/a", "headers": {"k": "v"}}})).unwrap();
        assert_eq!((r.audio_rate, r.bidirectional, r.streams.is_none()), (16_000, false, true));
        for bad in [
            serde_json::json!({"sessionId": "s", "token": "t", "websocket": {"uri": "https://x/a"}}),
            serde_json::json!({"sessionId": "s", "token": "t", "websocket": {"uri": "wss://x/a", "audioRate": 44100}}),
            serde_json::json!({"sessionId": "s", "token": "t", "websocket": {"uri": "wss://x/a", "streams": []}}),
            serde_json::json!({"sessionId": "s", "token": "t", "websocket": {"uri": "wss://x/a", "headers": {"k": 1}}}),
            serde_json::json!({"sessionId": "s", "websocket": {"uri": "wss://x/a"}}),
            serde_json::json!({"sessionId": "s", "token": "t"}),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad}");
        }
    }
}
