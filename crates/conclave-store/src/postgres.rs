//! PostgreSQL, for cluster mode: several `conclave serve` nodes share one database. Same
//! semantics as the SQLite store (the conformance suite in tests/conformance.rs runs against
//! both): the same sealing contexts under the same master key, `Conflict` on a duplicate,
//! compare-and-set archive updates, and an append-only audit log enforced by triggers.
//!
//! Owns: SQL for PostgreSQL. Must not touch: plaintext secrets in the database (everything
//! secret is sealed with the master key before it is bound to a statement), nor the database
//! URL in messages (it may carry a password).

use crate::records::{
    ArchiveRecord, AuditEntry, CallbackRecord, NewApplication, NewProject, OutboxRecord, Project, ProjectKind,
    ProjectSummary, PublicKeyRecord, SessionRecord, public_key_id,
};
use crate::sealing::MasterKey;
use crate::shared::{
    KEY_CHECK, KEY_CHECK_PLAINTEXT, clamp_u32, conflict_or, is_unique_violation, previous_secret_context,
    secret_context, to_i64, to_u64, unseal_text, verify_key_check,
};
use crate::{Store, StoreError};
use async_trait::async_trait;
use conclave_core::wire::{ArchiveMode, MediaMode};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use std::str::FromStr;
use std::time::Duration;
use zeroize::Zeroizing;

pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) key: MasterKey,
}

impl PgStore {
    /// An application's public keys, current first.
    async fn public_keys(&self, api_key: &str) -> Result<Vec<PublicKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT key_id, public_key, created_at_ms, valid_until FROM application_keys WHERE api_key = $1 ORDER BY valid_until IS NOT NULL, created_at_ms DESC")
            .bind(api_key)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| PublicKeyRecord {
                key_id: r.get("key_id"),
                der: r.get("public_key"),
                created_at_ms: r.get::<i64, _>("created_at_ms").max(0) as u64,
                valid_until: r.get::<Option<i64>, _>("valid_until").map(|v| v.max(0) as u64),
            })
            .collect())
    }

    /// Connects to `url` (`postgres://user:password@host:port/database?sslmode=…`), runs the
    /// migrations (serialized across nodes by sqlx's advisory lock) and checks that `key` is
    /// the master key the database's secrets were sealed with.
    pub async fn open(url: &str, key: MasterKey) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("conclave");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let store = PgStore { pool, key };
        store.check_master_key().await?;
        Ok(store)
    }

    /// Closes the pool's connections (tests reopen the same database).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn check_master_key(&self) -> Result<(), StoreError> {
        let sealed = self.key.seal(KEY_CHECK, KEY_CHECK_PLAINTEXT);
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(KEY_CHECK)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(KEY_CHECK).fetch_one(&self.pool).await?;
        verify_key_check(&self.key, &stored)
    }

    fn unseal_text(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<String>, StoreError> {
        unseal_text(&self.key, context, sealed)
    }
}

fn session_from_row(r: &PgRow) -> SessionRecord {
    let media_mode = match r.get::<String, _>("media_mode").as_str() {
        "routed" => MediaMode::Routed,
        _ => MediaMode::Relayed,
    };
    let archive_mode = match r.get::<String, _>("archive_mode").as_str() {
        "always" => ArchiveMode::Always,
        _ => ArchiveMode::Manual,
    };
    SessionRecord {
        session_id: r.get("session_id"),
        api_key: r.get("api_key"),
        media_mode,
        archive_mode,
        e2ee: r.get("e2ee"),
        max_participants: r.get::<Option<i64>, _>("max_participants").map(clamp_u32),
        location: r.get("location"),
        archive_name: r.get("archive_name"),
        archive_resolution: r.get("archive_resolution"),
        created_at_ms: to_u64(r.get("created_at_ms")),
        ended_at_ms: r.get::<Option<i64>, _>("ended_at_ms").map(to_u64),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_project(&self, p: &NewProject) -> Result<(), StoreError> {
        let sealed = self.key.seal(&secret_context(&p.api_key), p.secret.as_bytes());
        sqlx::query("INSERT INTO projects (api_key, name, secret_sealed, created_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(&p.api_key)
            .bind(&p.name)
            .bind(sealed)
            .bind(to_i64(p.created_at_ms))
            .execute(&self.pool)
            .await
            .map_err(conflict_or)?;
        Ok(())
    }

    async fn project(&self, api_key: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT name, secret_sealed, previous_secret_sealed, previous_valid_until, created_at_ms, default_max_participants, pii_policy, archive_recipient, kind FROM projects WHERE api_key = $1")
            .bind(api_key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let secret = self.unseal_text(&secret_context(api_key), &row.get::<Vec<u8>, _>("secret_sealed"))?;
        let previous_secret = match (
            row.get::<Option<Vec<u8>>, _>("previous_secret_sealed"),
            row.get::<Option<i64>, _>("previous_valid_until"),
        ) {
            (Some(sealed), Some(until)) => {
                Some((self.unseal_text(&previous_secret_context(api_key), &sealed)?, to_u64(until)))
            }
            _ => None,
        };
        let kind = ProjectKind::from_db(&row.get::<String, _>("kind"));
        let public_keys = match kind {
            ProjectKind::Project => Vec::new(),
            ProjectKind::Application => self.public_keys(api_key).await?,
        };
        Ok(Some(Project {
            kind,
            public_keys,
            api_key: api_key.to_owned(),
            name: row.get("name"),
            secret,
            previous_secret,
            created_at_ms: to_u64(row.get("created_at_ms")),
            default_max_participants: row.get::<Option<i64>, _>("default_max_participants").map(clamp_u32),
            pii_policy: row.get::<String, _>("pii_policy").parse().unwrap_or_default(),
            archive_recipient: row.get("archive_recipient"),
        }))
    }

    async fn list_projects(&self) -> Result<Vec<ProjectSummary>, StoreError> {
        // COLLATE "C": byte order, as SQLite's default BINARY collation sorts.
        let rows = sqlx::query(r#"SELECT api_key, name, created_at_ms, previous_valid_until, kind FROM projects ORDER BY created_at_ms, api_key COLLATE "C""#)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ProjectSummary {
                kind: ProjectKind::from_db(&r.get::<String, _>("kind")),
                api_key: r.get("api_key"),
                name: r.get("name"),
                created_at_ms: to_u64(r.get("created_at_ms")),
                rotation_grace_until: r.get::<Option<i64>, _>("previous_valid_until").map(to_u64),
            })
            .collect())
    }

    async fn rotate_secret(
        &self,
        api_key: &str,
        new_secret: &str,
        previous_valid_until: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: two nodes rotating at once serialize, so neither loses the other's secret.
        let old: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT secret_sealed FROM projects WHERE api_key = $1 FOR UPDATE")
                .bind(api_key)
                .fetch_optional(&mut *tx)
                .await?;
        let old = old.ok_or(StoreError::NotFound)?;
        let old_plain = self.unseal_text(&secret_context(api_key), &old)?;
        let previous = self.key.seal(&previous_secret_context(api_key), old_plain.as_bytes());
        let new = self.key.seal(&secret_context(api_key), new_secret.as_bytes());
        sqlx::query("UPDATE projects SET secret_sealed = $1, previous_secret_sealed = $2, previous_valid_until = $3, rotated_at_ms = $4 WHERE api_key = $5")
            .bind(new)
            .bind(previous)
            .bind(to_i64(previous_valid_until))
            .bind(to_i64(now_ms))
            .bind(api_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_application(&self, a: &NewApplication) -> Result<(), StoreError> {
        let sealed = self.key.seal(&secret_context(&a.application_id), a.webhook_secret.as_bytes());
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO projects (api_key, name, secret_sealed, created_at_ms, kind) VALUES ($1, $2, $3, $4, 'application')")
            .bind(&a.application_id)
            .bind(&a.name)
            .bind(sealed)
            .bind(to_i64(a.created_at_ms))
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
        sqlx::query(
            "INSERT INTO application_keys (api_key, key_id, public_key, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&a.application_id)
        .bind(public_key_id(&a.public_key_der))
        .bind(&a.public_key_der)
        .bind(to_i64(a.created_at_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_application_key(
        &self,
        application_id: &str,
        new_der: &[u8],
        previous_valid_until: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM projects WHERE api_key = $1 FOR UPDATE")
            .bind(application_id)
            .fetch_optional(&mut *tx)
            .await?;
        if kind.as_deref() != Some("application") {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM application_keys WHERE api_key = $1 AND valid_until IS NOT NULL AND valid_until <= $2",
        )
        .bind(application_id)
        .bind(to_i64(now_ms / 1000))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE application_keys SET valid_until = $1 WHERE api_key = $2 AND valid_until IS NULL")
            .bind(to_i64(previous_valid_until))
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO application_keys (api_key, key_id, public_key, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(application_id)
        .bind(public_key_id(new_der))
        .bind(new_der)
        .bind(to_i64(now_ms))
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
        sqlx::query("UPDATE projects SET previous_valid_until = $1, rotated_at_ms = $2 WHERE api_key = $3")
            .bind(to_i64(previous_valid_until))
            .bind(to_i64(now_ms))
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (session_id, api_key, media_mode, archive_mode, e2ee, max_participants, location, archive_name, archive_resolution, created_at_ms, ended_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.session_id)
        .bind(&s.api_key)
        .bind(s.media_mode.as_str())
        .bind(s.archive_mode.as_str())
        .bind(s.e2ee)
        .bind(s.max_participants.map(i64::from))
        .bind(&s.location)
        .bind(&s.archive_name)
        .bind(&s.archive_resolution)
        .bind(to_i64(s.created_at_ms))
        .bind(s.ended_at_ms.map(to_i64))
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from_row))
    }

    async fn end_session(&self, session_id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sessions SET ended_at_ms = $1 WHERE session_id = $2 AND ended_at_ms IS NULL")
            .bind(to_i64(now_ms))
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_default_max_participants(&self, api_key: &str, limit: Option<u32>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET default_max_participants = $1 WHERE api_key = $2")
            .bind(limit.map(i64::from))
            .bind(api_key)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_pii_policy(&self, api_key: &str, policy: conclave_core::pii::PiiPolicy) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET pii_policy = $1 WHERE api_key = $2")
            .bind(policy.as_str())
            .bind(api_key)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn revoke_token(
        &self,
        fingerprint: &[u8; 32],
        api_key: &str,
        session_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        // Like SQLite's INSERT OR REPLACE: the latest revocation of a fingerprint wins.
        sqlx::query(
            "INSERT INTO revoked_tokens (fingerprint, api_key, session_id, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (fingerprint) DO UPDATE SET api_key = EXCLUDED.api_key, session_id = EXCLUDED.session_id, expires_at = EXCLUDED.expires_at",
        )
        .bind(&fingerprint[..])
        .bind(api_key)
        .bind(session_id)
        .bind(to_i64(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn is_token_revoked(&self, fingerprint: &[u8; 32]) -> Result<bool, StoreError> {
        let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE fingerprint = $1)")
            .bind(&fingerprint[..])
            .fetch_one(&self.pool)
            .await?;
        Ok(found)
    }

    async fn purge_revocations(&self, before: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(to_i64(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_log (at_ms, actor, source, api_key, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(to_i64(e.at_ms))
            .bind(&e.actor)
            .bind(&e.source)
            .bind(&e.api_key)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn audit_entries(&self, api_key: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM audit_log WHERE ($1::text IS NULL OR api_key = $1) ORDER BY seq DESC LIMIT $2")
                .bind(api_key)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                seq: r.get("seq"),
                at_ms: to_u64(r.get("at_ms")),
                actor: r.get("actor"),
                source: r.get("source"),
                api_key: r.get("api_key"),
                action: r.get("action"),
                target: r.get("target"),
                detail: r.get("detail"),
            })
            .collect())
    }

    async fn enqueue_webhook(&self, r: &OutboxRecord) -> Result<i64, StoreError> {
        let seq: i64 = sqlx::query_scalar("INSERT INTO webhook_outbox (node_id, api_key, session_id, url, event, body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq")
            .bind(&r.node_id)
            .bind(&r.api_key)
            .bind(&r.session_id)
            .bind(&r.url)
            .bind(&r.event)
            .bind(&r.body)
            .bind(to_i64(r.created_at_ms))
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    async fn pending_webhooks(&self, node_id: &str) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM webhook_outbox WHERE node_id = $1 ORDER BY seq")
            .bind(node_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(outbox_row).collect())
    }

    async fn webhook_backlog(&self) -> Result<(u64, Option<u64>), StoreError> {
        let (n, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at_ms) FROM webhook_outbox").fetch_one(&self.pool).await?;
        Ok((to_u64(n), oldest.map(to_u64)))
    }

    async fn webhook_outbox_nodes(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT DISTINCT node_id FROM webhook_outbox").fetch_all(&self.pool).await?)
    }

    async fn claim_webhooks(&self, from: &str, to: &str) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = sqlx::query("UPDATE webhook_outbox SET node_id = $1 WHERE node_id = $2 RETURNING *")
            .bind(to)
            .bind(from)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed: Vec<OutboxRecord> = rows.into_iter().map(outbox_row).collect();
        claimed.sort_by_key(|r| r.seq);
        Ok(claimed)
    }

    async fn delete_webhook(&self, seq: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_outbox WHERE seq = $1").bind(seq).execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_callback(&self, c: &CallbackRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO callbacks (id, api_key, grp, event, url, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id)
        .bind(&c.api_key)
        .bind(&c.group)
        .bind(&c.event)
        .bind(&c.url)
        .bind(to_i64(c.created_at_ms))
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    async fn callbacks(&self, api_key: &str) -> Result<Vec<CallbackRecord>, StoreError> {
        let rows = sqlx::query(r#"SELECT id, api_key, grp, event, url, created_at_ms FROM callbacks WHERE api_key = $1 ORDER BY created_at_ms, id COLLATE "C""#)
            .bind(api_key)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| CallbackRecord {
                id: r.get("id"),
                api_key: r.get("api_key"),
                group: r.get("grp"),
                event: r.get("event"),
                url: r.get("url"),
                created_at_ms: to_u64(r.get("created_at_ms")),
            })
            .collect())
    }

    async fn delete_callback(&self, api_key: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM callbacks WHERE api_key = $1 AND id = $2")
            .bind(api_key)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_archive(&self, r: &ArchiveRecord) -> Result<(), StoreError> {
        self.archive_insert(r).await
    }
    async fn update_archive(
        &self,
        r: &ArchiveRecord,
        expected: conclave_core::archive::ArchiveStatus,
    ) -> Result<bool, StoreError> {
        self.archive_update(r, expected).await
    }
    async fn archive(&self, id: &str) -> Result<Option<ArchiveRecord>, StoreError> {
        self.archive_get(id).await
    }
    async fn list_archives(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(u64, Vec<ArchiveRecord>), StoreError> {
        self.archive_list(api_key, session_id, offset, count).await
    }
    async fn archives_in_status(
        &self,
        statuses: &[conclave_core::archive::ArchiveStatus],
    ) -> Result<Vec<ArchiveRecord>, StoreError> {
        self.archive_in_status(statuses).await
    }
    async fn set_archive_storage(
        &self,
        api_key: &str,
        config_json: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.storage_set(api_key, config_json, now_ms).await
    }
    async fn archive_storage(&self, api_key: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        self.storage_get(api_key).await
    }
    async fn set_archive_recipient(&self, api_key: &str, recipient: Option<&str>) -> Result<(), StoreError> {
        self.recipient_set(api_key, recipient).await
    }
    async fn archive_status_counts(&self) -> Result<Vec<(conclave_core::archive::ArchiveStatus, u64)>, StoreError> {
        self.archive_counts().await
    }
}

fn outbox_row(r: sqlx::postgres::PgRow) -> OutboxRecord {
    OutboxRecord {
        seq: r.get("seq"),
        node_id: r.get("node_id"),
        api_key: r.get("api_key"),
        session_id: r.get("session_id"),
        url: r.get("url"),
        event: r.get("event"),
        body: r.get("body"),
        created_at_ms: to_u64(r.get("created_at_ms")),
    }
}
