//! Archive wire types (compat doc 6.2 and 7): the start request and its validation, the
//! Archive object as the SDKs parse it, statuses and their allowed transitions, the
//! add/remove-stream patch and the storage-target body.
//!
//! Owns: what these bodies look like on the wire and which values are valid. Must not touch:
//! recording, files, upload or the store; the server maps its state onto these types.

use crate::wire::{ARCHIVE_RESOLUTIONS, InvalidRequest};
use serde::{Deserialize, Serialize};

fn invalid(msg: impl Into<String>) -> InvalidRequest {
    InvalidRequest(msg.into())
}

/// Lifecycle of compat 7.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveStatus {
    Started,
    Paused,
    Stopped,
    Uploaded,
    Available,
    Expired,
    Failed,
    Deleted,
}

impl ArchiveStatus {
    pub const ALL: [ArchiveStatus; 8] = [
        Self::Started,
        Self::Paused,
        Self::Stopped,
        Self::Uploaded,
        Self::Available,
        Self::Expired,
        Self::Failed,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Uploaded => "uploaded",
            Self::Available => "available",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    /// Still recording (or waiting for a stream to record).
    pub fn is_recording(self) -> bool {
        matches!(self, Self::Started | Self::Paused)
    }

    /// The state machine of compat 7.2. Same-state is not a transition.
    pub fn can_become(self, next: ArchiveStatus) -> bool {
        use ArchiveStatus::*;
        matches!(
            (self, next),
            (Started, Paused)
                | (Paused, Started)
                | (Started | Paused, Stopped | Failed)
                | (Stopped, Uploaded | Available | Failed)
                | (Available, Expired | Deleted)
                | (Uploaded, Deleted)
                | (Failed, Deleted)
                | (Expired, Deleted)
        )
    }
}

impl std::str::FromStr for ArchiveStatus {
    type Err = InvalidRequest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| invalid(format!("unknown archive status {s:?}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    #[default]
    Composed,
    Individual,
}

impl OutputMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Composed => "composed",
            Self::Individual => "individual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    #[default]
    Auto,
    Manual,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Manual => "manual",
        }
    }
}

/// `layout` of a composed archive. Only `bestFit` changes our output today; the others are
/// accepted and stored so that SDK calls succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveLayout {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stylesheet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshare_type: Option<String>,
}

pub const LAYOUT_TYPES: [&str; 5] = ["bestFit", "pip", "verticalPresentation", "horizontalPresentation", "custom"];

impl ArchiveLayout {
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if !LAYOUT_TYPES.contains(&self.kind.as_str()) {
            return Err(invalid(format!("layout type must be one of {}", LAYOUT_TYPES.join(", "))));
        }
        if self.stylesheet.is_some() && self.kind != "custom" {
            return Err(invalid("stylesheet is only allowed with the custom layout type"));
        }
        if self.kind == "custom" && self.stylesheet.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("the custom layout type needs a stylesheet"));
        }
        if self.screenshare_type.is_some() && self.kind != "bestFit" {
            return Err(invalid("screenshareType requires the bestFit layout type"));
        }
        if self.stylesheet.as_ref().is_some_and(|s| s.len() > 10_000) {
            return Err(invalid("stylesheet is longer than 10000 characters"));
        }
        Ok(())
    }
}

/// `POST /v2/project/{apiKey}/archive` as the SDKs send it (unknown keys are ignored: Node
/// ≥ 2.21 passes its options through).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveStartBody {
    pub session_id: Option<String>,
    pub name: Option<String>,
    pub has_audio: Option<bool>,
    pub has_video: Option<bool>,
    pub output_mode: Option<OutputMode>,
    pub resolution: Option<String>,
    pub layout: Option<ArchiveLayout>,
    pub stream_mode: Option<StreamMode>,
    pub multi_archive_tag: Option<String>,
    pub max_bitrate: Option<i64>,
    pub quantization_parameter: Option<i64>,
}

/// A validated start request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveStartRequest {
    pub session_id: String,
    pub name: Option<String>,
    pub has_audio: bool,
    pub has_video: bool,
    pub output_mode: OutputMode,
    pub resolution: Option<String>,
    pub layout: Option<ArchiveLayout>,
    pub stream_mode: StreamMode,
    pub multi_archive_tag: Option<String>,
    pub max_bitrate: Option<i64>,
    pub quantization_parameter: Option<i64>,
}

/// Default composed resolution (OpenTok's).
pub const DEFAULT_RESOLUTION: &str = "640x480";
const MAX_NAME_LEN: usize = 1000;

impl ArchiveStartBody {
    pub fn validate(self) -> Result<ArchiveStartRequest, InvalidRequest> {
        let session_id = self.session_id.filter(|s| !s.is_empty()).ok_or_else(|| invalid("sessionId is required"))?;
        let has_audio = self.has_audio.unwrap_or(true);
        let has_video = self.has_video.unwrap_or(true);
        if !has_audio && !has_video {
            return Err(invalid("hasAudio and hasVideo cannot both be false"));
        }
        let output_mode = self.output_mode.unwrap_or_default();
        if let Some(r) = &self.resolution {
            if output_mode == OutputMode::Individual {
                return Err(invalid("resolution is only allowed for composed archives"));
            }
            if !ARCHIVE_RESOLUTIONS.contains(&r.as_str()) {
                return Err(invalid(format!("resolution must be one of {}", ARCHIVE_RESOLUTIONS.join(", "))));
            }
        }
        if let Some(l) = &self.layout {
            l.validate()?;
        }
        if self.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_LEN) {
            return Err(invalid("name is longer than 1000 characters"));
        }
        // Control characters (NUL above all) have no place in a name, and PostgreSQL cannot
        // store NUL in text.
        if self.name.as_ref().is_some_and(|n| n.chars().any(char::is_control))
            || self.multi_archive_tag.as_ref().is_some_and(|t| t.chars().any(char::is_control))
        {
            return Err(invalid("name and multiArchiveTag must not contain control characters"));
        }
        if self.multi_archive_tag.as_ref().is_some_and(|t| t.len() > 200) {
            return Err(invalid("multiArchiveTag is longer than 200 characters"));
        }
        if self.max_bitrate.is_some() && self.quantization_parameter.is_some() {
            return Err(invalid("maxBitrate and quantizationParameter are mutually exclusive"));
        }
        if let Some(b) = self.max_bitrate
            && !(100_000..=6_000_000).contains(&b)
        {
            return Err(invalid("maxBitrate must be between 100000 and 6000000"));
        }
        if let Some(q) = self.quantization_parameter
            && !(15..=40).contains(&q)
        {
            return Err(invalid("quantizationParameter must be between 15 and 40"));
        }
        let composed = output_mode == OutputMode::Composed;
        Ok(ArchiveStartRequest {
            session_id,
            name: self.name,
            has_audio,
            has_video,
            output_mode,
            resolution: if composed {
                Some(self.resolution.unwrap_or_else(|| DEFAULT_RESOLUTION.to_owned()))
            } else {
                None
            },
            layout: self.layout,
            stream_mode: self.stream_mode.unwrap_or_default(),
            multi_archive_tag: self.multi_archive_tag.filter(|t| !t.is_empty()),
            max_bitrate: self.max_bitrate,
            quantization_parameter: self.quantization_parameter,
        })
    }
}

/// Parses `"WxH"` into pixels.
pub fn parse_resolution(r: &str) -> Option<(u32, u32)> {
    let (w, h) = r.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// One stream selected in a `manual` archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveStreamSelection {
    pub stream_id: String,
    pub has_audio: bool,
    pub has_video: bool,
}

/// `PATCH …/archive/{id}/streams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPatch {
    Add(ArchiveStreamSelection),
    Remove(String),
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamPatchBody {
    pub add_stream: Option<String>,
    pub remove_stream: Option<String>,
    pub has_audio: Option<serde_json::Value>,
    pub has_video: Option<serde_json::Value>,
}

/// The SDKs coerce to booleans; accept what they send (`true`, `1`, `"true"`).
fn truthy(v: Option<&serde_json::Value>) -> bool {
    match v {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(serde_json::Value::String(s)) => !matches!(s.as_str(), "" | "false" | "0"),
        Some(_) => true,
    }
}

impl StreamPatchBody {
    pub fn validate(self) -> Result<StreamPatch, InvalidRequest> {
        match (self.add_stream, self.remove_stream) {
            (Some(id), None) if !id.is_empty() => Ok(StreamPatch::Add(ArchiveStreamSelection {
                stream_id: id,
                has_audio: truthy(self.has_audio.as_ref()),
                has_video: truthy(self.has_video.as_ref()),
            })),
            (None, Some(id)) if !id.is_empty() => Ok(StreamPatch::Remove(id)),
            _ => Err(invalid("give exactly one of addStream or removeStream")),
        }
    }
}

/// The Archive object of compat 7.1, as sent by start/stop/get/list and the callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveJson {
    pub id: String,
    pub status: ArchiveStatus,
    pub name: Option<String>,
    pub reason: String,
    pub session_id: String,
    /// The API key as a number; 0 for a Vonage application (see `application_id`).
    pub project_id: u64,
    pub partner_id: u64,
    /// A Vonage application's ID (the Vonage SDKs read `applicationId`); absent for projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub size: u64,
    pub duration: u64,
    pub output_mode: OutputMode,
    pub stream_mode: StreamMode,
    pub has_audio: bool,
    pub has_video: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<ArchiveLayout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization_parameter: Option<i64>,
    pub streams: Vec<ArchiveStreamSelection>,
    pub sha256sum: String,
    pub password: String,
    pub certificate: String,
    pub url: Option<String>,
    /// Extension: the file is encrypted to the project's archive recipient key.
    pub encrypted: bool,
    /// Extension: when an `available` archive expires (ms since epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    pub event: String,
}

/// `GET …/archive` reply: `count` is the total that matched, not the page size.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArchiveList {
    pub count: u64,
    pub items: Vec<ArchiveJson>,
}

/// Largest page of `GET …/archive`.
pub const MAX_LIST_COUNT: u32 = 1000;
pub const DEFAULT_LIST_COUNT: u32 = 50;

/// `PUT /v2/project/{apiKey}/archive/storage`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub config: Option<S3ConfigBody>,
    pub fallback: Option<String>,
}

/// `config` for `type: s3`. `endpoint` is the S3-compatible base URL (default AWS).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3ConfigBody {
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: Option<bool>,
    /// `s3` (SSE-S3) or `none`.
    #[serde(default)]
    pub sse: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
}

impl std::fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageTarget")
            .field("bucket", &self.s3.bucket)
            .field("endpoint", &self.s3.endpoint)
            .field("secret_key", &"<redacted>")
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// Where a failed upload's file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Keep it in Conclave's fallback store (`available`, 72 h). OpenTok calls it `opentok`.
    Conclave,
    /// No copy is served: the archive ends `failed`; bytes wait for an operator.
    None,
}

/// A validated storage target.
#[derive(Clone, Serialize, Deserialize)]
pub struct StorageTarget {
    pub s3: S3ConfigBody,
    pub fallback: Fallback,
}

impl StorageBody {
    pub fn validate(self) -> Result<StorageTarget, InvalidRequest> {
        match self.kind.as_deref() {
            Some("s3") => {}
            Some("azure") => return Err(invalid("type azure is not supported; use s3 (any S3-compatible service)")),
            _ => return Err(invalid("type must be s3")),
        }
        let s3 = self.config.ok_or_else(|| invalid("config is required"))?;
        if s3.bucket.is_empty()
            || s3.bucket.len() > 63
            || !s3.bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(invalid("config.bucket is not a valid bucket name"));
        }
        if s3.access_key.is_empty() || s3.secret_key.is_empty() {
            return Err(invalid("config.accessKey and config.secretKey are required"));
        }
        if let Some(ep) = &s3.endpoint
            && !(ep.starts_with("https://") || ep.starts_with("http://"))
        {
            return Err(invalid("config.endpoint must be an http(s) URL"));
        }
        if let Some(region) = &s3.region
            && !is_s3_region(region)
        {
            return Err(invalid("config.region must be an S3 region name such as eu-west-1"));
        }
        if !matches!(s3.sse.as_deref(), None | Some("s3") | Some("none") | Some("")) {
            return Err(invalid("config.sse must be s3 or none"));
        }
        if s3.prefix.as_ref().is_some_and(|p| p.contains("..") || p.len() > 200) {
            return Err(invalid("config.prefix is not a valid key prefix"));
        }
        let fallback = match self.fallback.as_deref() {
            None | Some("opentok") | Some("conclave") => Fallback::Conclave,
            Some("none") => Fallback::None,
            Some(_) => return Err(invalid("fallback must be opentok, conclave or none")),
        };
        Ok(StorageTarget { s3, fallback })
    }
}

/// An S3 region name: lowercase letters and digits in hyphen-separated words (`us-east-1`,
/// `eu-central-2`, `us-gov-west-1`), at most 32 characters. Without an endpoint the region
/// becomes part of the host name the client connects to, so nothing else may pass: no `@`,
/// `:`, `/`, `#` or `.` that would turn it into another host, port or path.
pub fn is_s3_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// The archive ID format: a lowercase hyphenated UUID. Anything else is refused before it
/// reaches the store or a file name (no path traversal).
pub fn is_archive_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<ArchiveStartRequest, InvalidRequest> {
        serde_json::from_str::<ArchiveStartBody>(json).unwrap().validate()
    }

    #[test]
    fn python_default_body_is_a_composed_auto_archive() {
        let r = body(r#"{"name": null, "sessionId": "s", "hasAudio": true, "hasVideo": true, "outputMode": "composed", "resolution": null, "streamMode": "auto", "multiArchiveTag": null, "maxBitrate": null}"#).unwrap();
        assert_eq!(r.output_mode, OutputMode::Composed);
        assert_eq!(r.resolution.as_deref(), Some("640x480"));
        assert_eq!(r.stream_mode, StreamMode::Auto);
        assert!(r.has_audio && r.has_video);
    }

    #[test]
    fn invalid_start_bodies_are_refused_with_a_reason() {
        for (json, needle) in [
            (r#"{}"#, "sessionId"),
            (r#"{"sessionId":"s","hasAudio":false,"hasVideo":false}"#, "both be false"),
            (r#"{"sessionId":"s","outputMode":"individual","resolution":"640x480"}"#, "composed"),
            (r#"{"sessionId":"s","resolution":"123x45"}"#, "resolution"),
            (r#"{"sessionId":"s","maxBitrate":5}"#, "maxBitrate"),
            (r#"{"sessionId":"s","quantizationParameter":41}"#, "quantization"),
            (r#"{"sessionId":"s","layout":{"type":"pip","stylesheet":"x"}}"#, "stylesheet"),
            (r#"{"sessionId":"s","layout":{"type":"nope"}}"#, "layout type"),
            (r#"{"sessionId":"s","name":"a\u0000b"}"#, "control characters"),
        ] {
            let e = body(json).unwrap_err();
            assert!(e.0.contains(needle), "{json}: {e}");
        }
        assert!(serde_json::from_str::<ArchiveStartBody>(r#"{"sessionId":"s","outputMode":"weird"}"#).is_err());
    }

    #[test]
    fn lifecycle_follows_compat_7_2() {
        use ArchiveStatus::*;
        assert!(Started.can_become(Paused) && Paused.can_become(Started));
        assert!(Started.can_become(Stopped) && Stopped.can_become(Available) && Available.can_become(Expired));
        assert!(Stopped.can_become(Uploaded) && Uploaded.can_become(Deleted));
        assert!(!Uploaded.can_become(Available) && !Expired.can_become(Available) && !Deleted.can_become(Started));
        assert!(!Started.can_become(Uploaded), "a file must be finalized before it is uploaded");
        for s in ArchiveStatus::ALL {
            assert_eq!(s.as_str().parse::<ArchiveStatus>().unwrap(), s);
            assert!(!s.can_become(s));
        }
    }

    #[test]
    fn archive_ids_are_strict_uuids() {
        assert!(is_archive_id("e85741ce-d280-4efa-a3ba-93379a68be06"));
        for bad in [
            "../../etc/passwd",
            "E85741CE-D280-4EFA-A3BA-93379A68BE06",
            "e85741ce-d280-4efa-a3ba-93379a68be0",
            "e85741ce/d280-4efa-a3ba-93379a68be06",
            "",
        ] {
            assert!(!is_archive_id(bad), "{bad}");
        }
    }

    #[test]
    fn stream_patches_coerce_booleans_like_the_sdks() {
        let p: StreamPatchBody = serde_json::from_str(r#"{"addStream":"abc","hasAudio":0,"hasVideo":"true"}"#).unwrap();
        assert_eq!(
            p.validate().unwrap(),
            StreamPatch::Add(ArchiveStreamSelection { stream_id: "abc".into(), has_audio: false, has_video: true })
        );
        let p: StreamPatchBody = serde_json::from_str(r#"{"removeStream":"abc"}"#).unwrap();
        assert_eq!(p.validate().unwrap(), StreamPatch::Remove("abc".into()));
        let p: StreamPatchBody = serde_json::from_str(r#"{"addStream":"a","removeStream":"b"}"#).unwrap();
        assert!(p.validate().is_err());
    }

    #[test]
    fn s3_regions_are_plain_names() {
        for ok in ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1", "auto"] {
            assert!(is_s3_region(ok), "{ok}");
        }
        for bad in ["", "-", "us--east", "us-east-", "x@127.0.0.1", "a.b", "a/b", "a:1", "a#", "A", &"a".repeat(33)] {
            assert!(!is_s3_region(bad), "{bad}");
        }
    }

    #[test]
    fn storage_targets_are_validated() {
        let ok: StorageBody = serde_json::from_str(r#"{"type":"s3","config":{"bucket":"my-bucket","accessKey":"AK","secretKey":"SK","endpoint":"http://127.0.0.1:9000"},"fallback":"none"}"#).unwrap();
        let t = ok.validate().unwrap();
        assert_eq!(t.fallback, Fallback::None);
        assert!(!format!("{t:?}").contains("SK"), "Debug must not print the secret key");
        for json in [
            r#"{"type":"gcs","config":{"bucket":"b","accessKey":"a","secretKey":"s"}}"#,
            r#"{"type":"s3"}"#,
            r#"{"type":"s3","config":{"bucket":"Bad_Bucket","accessKey":"a","secretKey":"s"}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","endpoint":"ftp://x"}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s"},"fallback":"maybe"}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","region":"x@127.0.0.1:19443/"}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","region":"x@169.254.169.254:443/"}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","region":"127.0.0.1:9#"}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","region":""}}"#,
            r#"{"type":"s3","config":{"bucket":"b","accessKey":"a","secretKey":"s","region":"Us-East-1"}}"#,
        ] {
            let b: StorageBody = serde_json::from_str(json).unwrap();
            assert!(b.validate().is_err(), "{json}");
        }
    }
}
