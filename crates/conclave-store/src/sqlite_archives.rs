//! SQLite SQL for archives, upload targets and recipient keys (split from `sqlite.rs` to keep
//! files readable). Owns: those statements. Must not touch: archive decisions; the record is
//! stored as given (its `doc` JSON) with the indexed columns copied out of it.

use crate::records::ArchiveRecord;
use crate::sqlite::{SqliteStore, to_i64};
use crate::StoreError;
use conclave_core::archive::ArchiveStatus;
use sqlx::Row;
use zeroize::Zeroizing;

fn storage_context(api_key: &str) -> String {
    format!("archive-storage:{api_key}")
}

fn decode(doc: &str) -> Result<ArchiveRecord, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("archive row: {e}")))
}

fn encode(r: &ArchiveRecord) -> String {
    serde_json::to_string(r).expect("archive records serialize")
}

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
            .map_err(|e| if crate::sqlite::is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
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
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM archives WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        doc.as_deref().map(decode).transpose()
    }

    pub(crate) async fn archive_list(&self, api_key: &str, session_id: Option<&str>, offset: u32, count: u32) -> Result<(u64, Vec<ArchiveRecord>), StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM archives WHERE api_key = ? AND status <> 'deleted' AND (? IS NULL OR session_id = ?)")
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
            let rows: Vec<String> = sqlx::query_scalar("SELECT doc FROM archives WHERE status = ? ORDER BY created_at_ms")
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?;
            for doc in rows {
                out.push(decode(&doc)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn storage_set(&self, api_key: &str, config_json: Option<&str>, now_ms: u64) -> Result<(), StoreError> {
        match config_json {
            Some(json) => {
                let sealed = self.key.seal(&storage_context(api_key), json.as_bytes());
                sqlx::query("INSERT OR REPLACE INTO archive_storage (api_key, config_sealed, updated_at_ms) VALUES (?, ?, ?)")
                    .bind(api_key)
                    .bind(sealed)
                    .bind(to_i64(now_ms))
                    .execute(&self.writer)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM archive_storage WHERE api_key = ?").bind(api_key).execute(&self.writer).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn storage_get(&self, api_key: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT config_sealed FROM archive_storage WHERE api_key = ?").bind(api_key).fetch_optional(&self.pool).await?;
        sealed.map(|s| self.unseal_text(&storage_context(api_key), &s)).transpose()
    }

    pub(crate) async fn archive_counts(&self) -> Result<Vec<(ArchiveStatus, u64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM archives GROUP BY status").fetch_all(&self.pool).await?;
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
        let done = sqlx::query("UPDATE projects SET archive_recipient = ? WHERE api_key = ?").bind(recipient).bind(api_key).execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::records::{ArchiveRecord, NewProject};
    use crate::sealing::MasterKey;
    use crate::{SqliteStore, Store};
    use conclave_core::archive::{ArchiveStatus, OutputMode, StreamMode};
    use zeroize::Zeroizing;

    pub(crate) fn record(id: &str, session: &str, created: u64) -> ArchiveRecord {
        ArchiveRecord {
            id: id.into(),
            api_key: "47000001".into(),
            session_id: session.into(),
            status: ArchiveStatus::Started,
            reason: String::new(),
            created_at_ms: created,
            updated_at_ms: created,
            expires_at_ms: None,
            name: Some("n".into()),
            output_mode: OutputMode::Individual,
            stream_mode: StreamMode::Auto,
            has_audio: true,
            has_video: true,
            resolution: None,
            layout: None,
            multi_archive_tag: None,
            max_bitrate: None,
            quantization_parameter: None,
            streams: vec![],
            duration_s: 0,
            size: 0,
            sha256: String::new(),
            encrypted: false,
            fallback_file: None,
            uploaded_key: None,
            node: None,
        }
    }

    async fn open(dir: &std::path::Path) -> SqliteStore {
        let s = SqliteStore::open(dir, MasterKey::load_or_create(dir, None).unwrap()).await.unwrap();
        s.insert_project(&NewProject { api_key: "47000001".into(), name: "t".into(), secret: Zeroizing::new("5e8ff9bf55ba3508199d22e984129be6f0e1c3d2".into()), created_at_ms: 1 }).await.unwrap();
        s
    }

    #[tokio::test]
    async fn archives_round_trip_with_compare_and_set_and_paging() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path()).await;
        for i in 0..5u64 {
            s.insert_archive(&record(&format!("00000000-0000-4000-8000-00000000000{i}"), if i % 2 == 0 { "A" } else { "B" }, 100 + i)).await.unwrap();
        }
        assert!(matches!(s.insert_archive(&record("00000000-0000-4000-8000-000000000000", "A", 1)).await, Err(crate::StoreError::Conflict)));
        let mut a = s.archive("00000000-0000-4000-8000-000000000004").await.unwrap().unwrap();
        assert_eq!(a.session_id, "A");
        a.status = ArchiveStatus::Stopped;
        assert!(s.update_archive(&a, ArchiveStatus::Started).await.unwrap());
        assert!(!s.update_archive(&a, ArchiveStatus::Started).await.unwrap(), "stale expected status must not overwrite");
        let (total, page) = s.list_archives("47000001", None, 1, 2).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(page.iter().map(|r| r.created_at_ms).collect::<Vec<_>>(), vec![103, 102], "newest first, offset 1");
        let (total, _) = s.list_archives("47000001", Some("A"), 0, 50).await.unwrap();
        assert_eq!(total, 3);
        let mut b = s.archive("00000000-0000-4000-8000-000000000000").await.unwrap().unwrap();
        b.status = ArchiveStatus::Deleted;
        assert!(s.update_archive(&b, ArchiveStatus::Started).await.unwrap());
        assert_eq!(s.list_archives("47000001", None, 0, 50).await.unwrap().0, 4, "deleted archives leave the list");
        assert_eq!(s.archive(&b.id).await.unwrap().unwrap().status, ArchiveStatus::Deleted, "but a GET still says so");
        let stopped = s.archives_in_status(&[ArchiveStatus::Stopped]).await.unwrap();
        assert_eq!(stopped.len(), 1);
    }

    #[tokio::test]
    async fn storage_targets_are_sealed_and_recipients_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path()).await;
        let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
        s.set_archive_storage("47000001", Some(&format!(r#"{{"secretKey":"{secret}"}}"#)), 5).await.unwrap();
        assert!(s.archive_storage("47000001").await.unwrap().unwrap().contains(secret));
        s.set_archive_recipient("47000001", Some("age1xyz")).await.unwrap();
        assert_eq!(s.project("47000001").await.unwrap().unwrap().archive_recipient.as_deref(), Some("age1xyz"));
        s.pool.close().await;
        s.writer.close().await;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "plaintext storage secret on disk");
        }
        let s = SqliteStore::open(dir.path(), MasterKey::load_or_create(dir.path(), None).unwrap()).await.unwrap();
        s.set_archive_storage("47000001", None, 6).await.unwrap();
        assert!(s.archive_storage("47000001").await.unwrap().is_none());
    }
}
