//! Conclave's persistent state, behind the [`Store`] trait.
//!
//! Owns: the schema, migrations, and sealing of secrets at rest (the `sealing` module). The
//! embedded SQLite implementation is the default; the PostgreSQL one (cluster mode: several
//! nodes on one database) implements the same trait, and tests/conformance.rs runs one suite
//! against both. Must not touch: HTTP, token verification, or any decision about access: callers
//! decide, the store remembers.

mod postgres;
mod postgres_archives;
mod records;
pub mod sealing;
mod shared;
mod sqlite;
mod sqlite_archives;

pub use postgres::PgStore;
pub use records::{
    ArchiveRecord, AuditEntry, CallbackRecord, NewApplication, NewProject, OutboxRecord, Project, ProjectKind,
    ProjectSummary, PublicKeyRecord, SessionRecord, public_key_id,
};
pub use sealing::{MasterKey, MasterKeyError};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error(
        "the master key does not open this database's secrets (wrong CONCLAVE_MASTER_KEY or master.key? every node sharing a database needs the same key)"
    )]
    WrongMasterKey,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
}

/// Everything the server persists. Implementations seal secrets themselves; callers only ever
/// see plaintext secrets in memory (zeroized on drop).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn insert_project(&self, project: &NewProject) -> Result<(), StoreError>;
    async fn project(&self, api_key: &str) -> Result<Option<Project>, StoreError>;
    async fn list_projects(&self) -> Result<Vec<ProjectSummary>, StoreError>;
    /// Replaces the secret; the old one stays valid until `previous_valid_until` (unix s).
    async fn rotate_secret(
        &self,
        api_key: &str,
        new_secret: &str,
        previous_valid_until: u64,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// A Vonage application: a `projects` row of kind application (its sealed secret signs
    /// webhooks only) and its first public key; `Conflict` when the ID exists.
    async fn insert_application(&self, app: &NewApplication) -> Result<(), StoreError>;
    /// Adds `new_der` as the application's current key; the keys current until now keep
    /// verifying until `previous_valid_until` (unix s), and keys whose grace is over are
    /// dropped. `NotFound` unless `application_id` is an application; `Conflict` when the key
    /// is already registered.
    async fn rotate_application_key(
        &self,
        application_id: &str,
        new_der: &[u8],
        previous_valid_until: u64,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Marks a session ended; returns false when it was already ended or does not exist.
    async fn end_session(&self, session_id: &str, now_ms: u64) -> Result<bool, StoreError>;
    async fn set_default_max_participants(&self, api_key: &str, limit: Option<u32>) -> Result<(), StoreError>;
    async fn set_pii_policy(&self, api_key: &str, policy: conclave_core::pii::PiiPolicy) -> Result<(), StoreError>;

    /// Blocks a token (by its SHA-256 fingerprint) until it would have expired anyway.
    async fn revoke_token(
        &self,
        fingerprint: &[u8; 32],
        api_key: &str,
        session_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    async fn is_token_revoked(&self, fingerprint: &[u8; 32]) -> Result<bool, StoreError>;
    /// Drops revocations of tokens expired before `before` (unix s); returns how many.
    async fn purge_revocations(&self, before: u64) -> Result<u64, StoreError>;

    /// Appends to the audit log (`seq` is assigned by the store).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` entries, newest first, optionally for one project.
    async fn audit_entries(&self, api_key: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Stores a webhook before its first attempt; returns its sequence number.
    async fn enqueue_webhook(&self, record: &OutboxRecord) -> Result<i64, StoreError>;
    /// The undelivered webhooks of one node, oldest first.
    async fn pending_webhooks(&self, node_id: &str) -> Result<Vec<OutboxRecord>, StoreError>;
    /// How many webhooks are undelivered (all nodes), and when the oldest was made (ms).
    async fn webhook_backlog(&self) -> Result<(u64, Option<u64>), StoreError>;
    /// The nodes that have undelivered webhooks.
    async fn webhook_outbox_nodes(&self) -> Result<Vec<String>, StoreError>;
    /// Moves every undelivered webhook of node `from` to node `to` in one statement (two nodes
    /// racing for the same rows: one gets them all, the other none); returns the rows moved,
    /// oldest first.
    async fn claim_webhooks(&self, from: &str, to: &str) -> Result<Vec<OutboxRecord>, StoreError>;
    async fn delete_webhook(&self, seq: i64) -> Result<(), StoreError>;

    async fn insert_callback(&self, callback: &CallbackRecord) -> Result<(), StoreError>;
    async fn callbacks(&self, api_key: &str) -> Result<Vec<CallbackRecord>, StoreError>;
    /// Returns false when no such callback belongs to the project.
    async fn delete_callback(&self, api_key: &str, id: &str) -> Result<bool, StoreError>;

    /// A new archive; `Conflict` when the ID exists.
    async fn insert_archive(&self, record: &ArchiveRecord) -> Result<(), StoreError>;
    /// Replaces the archive only if its stored status is still `expected` (compare-and-set,
    /// so racing writers cannot skip a lifecycle step); returns whether it did.
    async fn update_archive(
        &self,
        record: &ArchiveRecord,
        expected: conclave_core::archive::ArchiveStatus,
    ) -> Result<bool, StoreError>;
    async fn archive(&self, id: &str) -> Result<Option<ArchiveRecord>, StoreError>;
    /// Newest first, `deleted` excluded; returns the total that matched and one page.
    async fn list_archives(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(u64, Vec<ArchiveRecord>), StoreError>;
    /// Every archive (all projects) in one of `statuses`, oldest first: recovery and sweeping.
    async fn archives_in_status(
        &self,
        statuses: &[conclave_core::archive::ArchiveStatus],
    ) -> Result<Vec<ArchiveRecord>, StoreError>;
    /// Sets (or with `None` removes) the project's upload target, a JSON document that is
    /// sealed at rest because it holds the bucket's secret key.
    async fn set_archive_storage(
        &self,
        api_key: &str,
        config_json: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    async fn archive_storage(&self, api_key: &str) -> Result<Option<zeroize::Zeroizing<String>>, StoreError>;
    /// How many archives are in each status (all projects), for `/metrics`.
    async fn archive_status_counts(&self) -> Result<Vec<(conclave_core::archive::ArchiveStatus, u64)>, StoreError> {
        let mut out = Vec::new();
        for s in conclave_core::archive::ArchiveStatus::ALL {
            out.push((s, self.archives_in_status(&[s]).await?.len() as u64));
        }
        Ok(out)
    }
    /// Sets (or removes) the public key new archives are encrypted to.
    async fn set_archive_recipient(&self, api_key: &str, recipient: Option<&str>) -> Result<(), StoreError>;
}
