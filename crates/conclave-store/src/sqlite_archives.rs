//! SQLite SQL for archives, upload targets and recipient keys (split from `sqlite.rs` to keep
//! files readable). Owns: those statements. Must not touch: archive decisions; the record is
//! stored as given (its `doc` JSON) with the indexed columns copied out of it.

use crate::StoreError;
use crate::records::ArchiveRecord;
use crate::shared::{decode_archive as decode, encode_archive as encode, storage_context, to_i64};
use crate::sqlite::SqliteStore;
use conclave_core::archive::ArchiveStatus;
use sqlx::Row;
use zeroize::Zeroizing;

impl SqliteStore {
    pub(crate) async fn archive_insert(&self, r: &ArchiveRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO archives (id, api_key, session_id, status, reason, doc, created_at_ms, updated_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&r.id)
            .bind(&r.api_key)
            .bind(&r.session_id)
            .bind(r.status.as_str())
            .bind(&r.reason)
            .bind(encode(r))
            .bind(to_i64(r.created_at_ms))
            .bind(to_i64(r.updated_at_ms))
            .bind(r.expires_at_ms.map(to_i64))
            .execute(&self.writer)
            .await
            .map_err(|e| if crate::shared::is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
        Ok(())
    }

    pub(crate) async fn archive_update(&self, r: &ArchiveRecord, expected: ArchiveStatus) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE archives SET status = ?, reason = ?, doc = ?, updated_at_ms = ?, expires_at_ms = ? WHERE id = ? AND status = ?")
            .bind(r.status.as_str())
            .bind(&r.reason)
            .bind(encode(r))
            .bind(to_i64(r.updated_at_ms))
            .bind(r.expires_at_ms.map(to_i64))
            .bind(&r.id)
            .bind(expected.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn archive_get(&self, id: &str) -> Result<Option<ArchiveRecord>, StoreError> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM archives WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        doc.as_deref().map(decode).transpose()
    }

    pub(crate) async fn archive_list(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(u64, Vec<ArchiveRecord>), StoreError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM archives WHERE api_key = ? AND status <> 'deleted' AND (? IS NULL OR session_id = ?)",
        )
        .bind(api_key)
        .bind(session_id)
        .bind(session_id)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query("SELECT doc FROM archives WHERE api_key = ? AND status <> 'deleted' AND (? IS NULL OR session_id = ?) ORDER BY created_at_ms DESC, id LIMIT ? OFFSET ?")
            .bind(api_key)
            .bind(session_id)
            .bind(session_id)
            .bind(i64::from(count))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(|r| decode(&r.get::<String, _>("doc"))).collect::<Result<_, _>>()?;
        Ok((total.max(0) as u64, items))
    }

    pub(crate) async fn archive_in_status(&self, statuses: &[ArchiveStatus]) -> Result<Vec<ArchiveRecord>, StoreError> {
        let mut out = Vec::new();
        for s in statuses {
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT doc FROM archives WHERE status = ? ORDER BY created_at_ms")
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await?;
            for doc in rows {
                out.push(decode(&doc)?);
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
                    "INSERT OR REPLACE INTO archive_storage (api_key, config_sealed, updated_at_ms) VALUES (?, ?, ?)",
                )
                .bind(api_key)
                .bind(sealed)
                .bind(to_i64(now_ms))
                .execute(&self.writer)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM archive_storage WHERE api_key = ?")
                    .bind(api_key)
                    .execute(&self.writer)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn storage_get(&self, api_key: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT config_sealed FROM archive_storage WHERE api_key = ?")
            .bind(api_key)
            .fetch_optional(&self.pool)
            .await?;
        sealed.map(|s| self.unseal_text(&storage_context(api_key), &s)).transpose()
    }

    pub(crate) async fn archive_counts(&self) -> Result<Vec<(ArchiveStatus, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM archives GROUP BY status").fetch_all(&self.pool).await?;
        let mut out: Vec<(ArchiveStatus, u64)> = ArchiveStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for r in rows {
            if let Ok(s) = r.get::<String, _>("status").parse::<ArchiveStatus>()
                && let Some(slot) = out.iter_mut().find(|(k, _)| *k == s)
            {
                slot.1 = r.get::<i64, _>("n").max(0) as u64;
            }
        }
        Ok(out)
    }

    pub(crate) async fn recipient_set(&self, api_key: &str, recipient: Option<&str>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET archive_recipient = ? WHERE api_key = ?")
            .bind(recipient)
            .bind(api_key)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
