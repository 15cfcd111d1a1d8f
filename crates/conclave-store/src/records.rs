//! Plain records that cross the [`crate::Store`] boundary. No behaviour beyond small helpers.

use conclave_core::wire::{ArchiveMode, MediaMode};
use zeroize::Zeroizing;

pub struct NewProject {
    pub api_key: String,
    pub name: String,
    pub secret: Zeroizing<String>,
    pub created_at_ms: u64,
}

/// What a `projects` row is: an OpenTok project (API key and secret) or a Vonage Video
/// application (application ID and RSA public keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProjectKind {
    #[default]
    Project,
    Application,
}

impl ProjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectKind::Project => "project",
            ProjectKind::Application => "application",
        }
    }

    pub(crate) fn from_db(s: &str) -> ProjectKind {
        if s == "application" { ProjectKind::Application } else { ProjectKind::Project }
    }
}

/// A new application: its ID, its first public key (SubjectPublicKeyInfo DER) and the secret
/// its webhooks are signed with (sealed like a project's secret, and never a credential: an
/// application authenticates only with its keys).
pub struct NewApplication {
    pub application_id: String,
    pub name: String,
    pub public_key_der: Vec<u8>,
    pub webhook_secret: Zeroizing<String>,
    pub created_at_ms: u64,
}

/// One registered public key of an application. Not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyRecord {
    /// The first 16 hex characters of the DER's SHA-256.
    pub key_id: String,
    pub der: Vec<u8>,
    pub created_at_ms: u64,
    /// `None` for the current key; after a rotation, when the previous one stops verifying (unix s).
    pub valid_until: Option<u64>,
}

/// The key ID of a public key: hex SHA-256 of its DER, first 16 characters.
pub fn public_key_id(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(der)[..8])
}

/// A project with its secrets unsealed. Debug output redacts them.
pub struct Project {
    pub kind: ProjectKind,
    /// An application's public keys (empty for a project).
    pub public_keys: Vec<PublicKeyRecord>,
    pub api_key: String,
    pub name: String,
    pub secret: Zeroizing<String>,
    pub previous_secret: Option<(Zeroizing<String>, u64)>,
    pub created_at_ms: u64,
    /// Applied to sessions created without `maxParticipants`.
    pub default_max_participants: Option<u32>,
    /// What to do with connection data that looks personal.
    pub pii_policy: conclave_core::pii::PiiPolicy,
    /// Public key (age `age1…` or `ssh-rsa …`) every new archive is encrypted to.
    pub archive_recipient: Option<String>,
}

impl Project {
    /// Secrets that verify signatures at `now` (unix s): the current one, plus the previous
    /// one while its rotation grace period lasts.
    /// An application has none: it verifies only with its public keys (its `secret` only
    /// signs its webhooks).
    pub fn candidate_secrets(&self, now: u64) -> impl Iterator<Item = &[u8]> {
        let is_project = self.kind == ProjectKind::Project;
        let previous = self.previous_secret.as_ref().filter(|(_, until)| now < *until).map(|(s, _)| s.as_bytes());
        std::iter::once(self.secret.as_bytes()).chain(previous).filter(move |_| is_project)
    }

    /// An application's public keys that verify at `now` (unix s): the current one, plus
    /// the previous ones while their rotation grace period lasts. None for a project.
    pub fn candidate_public_keys(&self, now: u64) -> impl Iterator<Item = &PublicKeyRecord> {
        let is_application = self.kind == ProjectKind::Application;
        self.public_keys.iter().filter(move |k| is_application && k.valid_until.is_none_or(|until| now < until))
    }
}

impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Project")
            .field("kind", &self.kind)
            .field("api_key", &self.api_key)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ProjectSummary {
    pub kind: ProjectKind,
    pub api_key: String,
    pub name: String,
    pub created_at_ms: u64,
    pub rotation_grace_until: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: String,
    pub api_key: String,
    pub media_mode: MediaMode,
    pub archive_mode: ArchiveMode,
    pub e2ee: bool,
    pub max_participants: Option<u32>,
    pub location: Option<String>,
    pub archive_name: Option<String>,
    pub archive_resolution: Option<String>,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
}

/// One administrative action, as recorded in the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: u64,
    pub actor: String,
    pub source: String,
    pub api_key: Option<String>,
    pub action: String,
    pub target: String,
    /// A JSON object with the action's parameters (never a secret or a token).
    pub detail: String,
}

/// A webhook waiting for delivery (the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub seq: i64,
    /// The node that delivers it (`""` in single-node mode).
    pub node_id: String,
    pub api_key: String,
    pub session_id: String,
    pub url: String,
    pub event: String,
    pub body: Vec<u8>,
    pub created_at_ms: u64,
}

/// A registered webhook (compat doc 6.9): `group`/`event` such as `connection`/`created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    pub id: String,
    pub api_key: String,
    pub group: String,
    pub event: String,
    pub url: String,
    pub created_at_ms: u64,
}

/// One archive: the indexed columns plus everything the Archive object and the server's
/// pipeline need. Serialized whole into the row's `doc` (new fields need no migration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveRecord {
    pub id: String,
    pub api_key: String,
    pub session_id: String,
    pub status: conclave_core::archive::ArchiveStatus,
    pub reason: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Set while `available`: when the sweeper expires it.
    pub expires_at_ms: Option<u64>,
    pub name: Option<String>,
    pub output_mode: conclave_core::archive::OutputMode,
    pub stream_mode: conclave_core::archive::StreamMode,
    pub has_audio: bool,
    pub has_video: bool,
    pub resolution: Option<String>,
    pub layout: Option<conclave_core::archive::ArchiveLayout>,
    /// Layouts set while recording, each with when it took effect (ms after `created_at_ms`);
    /// the first entry is the layout the archive started with. Empty when it never changed.
    #[serde(default)]
    pub layout_changes: Vec<(u64, Option<conclave_core::archive::ArchiveLayout>)>,
    pub multi_archive_tag: Option<String>,
    pub max_bitrate: Option<i64>,
    pub quantization_parameter: Option<i64>,
    /// `manual` mode: the streams chosen with PATCH …/streams.
    pub streams: Vec<conclave_core::archive::ArchiveStreamSelection>,
    pub duration_s: u64,
    pub size: u64,
    pub sha256: String,
    /// Encrypted to the project's recipient key.
    pub encrypted: bool,
    /// File name in the fallback store (`<id>.<ext>`) while one is kept there.
    pub fallback_file: Option<String>,
    /// Object key in the customer's bucket once uploaded.
    pub uploaded_key: Option<String>,
    /// The node that records it (cluster mode); `None` on a single node.
    pub node: Option<String>,
}
