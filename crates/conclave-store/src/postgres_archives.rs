//! PostgreSQL SQL for archives, upload targets and recipient keys (split from `postgres.rs`
//! to keep files readable). Owns: those statements. Must not touch: archive decisions; the
//! record is stored as given (its `doc` JSON) with the indexed columns copied out of it.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::records::ArchiveRecord;
use crate::shared::{conflict_or, decode_archive, encode_archive, storage_context, to_i64, unseal_text};
use conclave_core::archive::ArchiveStatus;
use zeroize::Zeroizing;

impl PgStore {
    pub(crate) async fn archive_insert(&self, r: &ArchiveRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO archives (id, api_key, session_id, status, reason, doc, created_at_ms, updated_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&r.id)
            .bind(&r.api_key)
            .bind(&r.session_id)
            .bind(r.status.as_str())
            .bind(&r.reason)
            .bind(encode_archive(r))
            .bind(to_i64(r.created_at_ms))
            .bind(to_i64(r.updated_at_ms))
            .bind(r.expires_at_ms.map(to_i64))
            .execute(&self.pool)
            .await
            .map_err(conflict_or)?;
        Ok(())
    }

    /// Compare-and-set: one statement, so of two nodes racing from the same status only one
    /// matches (the other's row lock waits, then re-checks `status` and finds it changed).
    pub(crate) async fn archive_update(&self, r: &ArchiveRecord, expected: ArchiveStatus) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE archives SET status = $1, reason = $2, doc = $3, updated_at_ms = $4, expires_at_ms = $5 WHERE id = $6 AND status = $7")
            .bind(r.status.as_str())
            .bind(&r.reason)
            .bind(encode_archive(r))
            .bind(to_i64(r.updated_at_ms))
            .bind(r.expires_at_ms.map(to_i64))
            .bind(&r.id)
            .bind(expected.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn archive_get(&self, id: &str) -> Result<Option<ArchiveRecord>, StoreError> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM archives WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        doc.as_deref().map(decode_archive).transpose()
    }

    pub(crate) async fn archive_list(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(u64, Vec<ArchiveRecord>), StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM archives WHERE api_key = $1 AND status <> 'deleted' AND ($2::text IS NULL OR session_id = $2)")
            .bind(api_key)
            .bind(session_id)
            .fetch_one(&self.pool)
            .await?;
        let docs: Vec<String> = sqlx::query_scalar(
            r#"SELECT doc FROM archives WHERE api_key = $1 AND status <> 'deleted' AND ($2::text IS NULL OR session_id = $2) ORDER BY created_at_ms DESC, id COLLATE "C" LIMIT $3 OFFSET $4"#,
        )
        .bind(api_key)
        .bind(session_id)
        .bind(i64::from(count))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        let items = docs.iter().map(|d| decode_archive(d)).collect::<Result<_, _>>()?;
        Ok((total.max(0) as u64, items))
    }

    pub(crate) async fn archive_in_status(&self, statuses: &[ArchiveStatus]) -> Result<Vec<ArchiveRecord>, StoreError> {
        // Status by status, like the SQLite store: the callers' order of statuses is kept.
        let mut out = Vec::new();
        for s in statuses {
            let docs: Vec<String> =
                sqlx::query_scalar("SELECT doc FROM archives WHERE status = $1 ORDER BY created_at_ms")
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await?;
            for doc in docs {
                out.push(decode_archive(&doc)?);
            }
        }
        Ok(out)
    }

    /// Every status, zero when none is in it (the same answer as the SQLite store's).
    pub(crate) async fn archive_counts(&self) -> Result<Vec<(ArchiveStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM archives GROUP BY status").fetch_all(&self.pool).await?;
        let mut out: Vec<(ArchiveStatus, u64)> = ArchiveStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, n) in rows {
            if let Ok(s) = status.parse::<ArchiveStatus>()
                && let Some(slot) = out.iter_mut().find(|(k, _)| *k == s)
            {
                slot.1 = n.max(0) as u64;
            }
        }
        Ok(out)
    }

    pub(crate) async fn storage_set(
        &self,
        api_key: &str,
        config_json: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match config_json {
            Some(json) => {
                let sealed = self.key.seal(&storage_context(api_key), json.as_bytes());
                sqlx::query(
                    "INSERT INTO archive_storage (api_key, config_sealed, updated_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (api_key) DO UPDATE SET config_sealed = EXCLUDED.config_sealed, updated_at_ms = EXCLUDED.updated_at_ms",
                )
                .bind(api_key)
                .bind(sealed)
                .bind(to_i64(now_ms))
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM archive_storage WHERE api_key = $1").bind(api_key).execute(&self.pool).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn storage_get(&self, api_key: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT config_sealed FROM archive_storage WHERE api_key = $1")
                .bind(api_key)
                .fetch_optional(&self.pool)
                .await?;
        sealed.map(|s| unseal_text(&self.key, &storage_context(api_key), &s)).transpose()
    }

    pub(crate) async fn recipient_set(&self, api_key: &str, recipient: Option<&str>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET archive_recipient = $1 WHERE api_key = $2")
            .bind(recipient)
            .bind(api_key)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
