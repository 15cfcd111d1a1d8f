//! The store conformance suite: every test is written once against `Arc<dyn Store>` and runs
//! against both backends, the embedded SQLite (a temporary data directory) and PostgreSQL (a
//! throwaway server from tests/pg, one per test). A behaviour that differs between the two is
//! a bug in one of them.
//!
//! Run: `cargo test -p conclave-store --test conformance` (PostgreSQL 15 from Debian must be
//! installed; scripts/test installs it).

mod pg;

use conclave_core::archive::{ArchiveStatus, OutputMode, StreamMode};
use conclave_core::pii::PiiPolicy;
use conclave_core::wire::{ArchiveMode, MediaMode};
use conclave_store::{
    ArchiveRecord, AuditEntry, CallbackRecord, MasterKey, NewApplication, NewProject, OutboxRecord, PgStore,
    ProjectKind, SessionRecord, SqliteStore, Store, StoreError, public_key_id,
};
use sqlx::Row;
use std::sync::Arc;
use zeroize::Zeroizing;

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { server: pg::Postgres, url: String },
}

/// One backend with a fresh, empty database and the master key it is opened with.
struct Fixture {
    backend: Backend,
    key_hex: String,
}

fn random_key_hex() -> String {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).unwrap();
    hex::encode(k)
}

impl Fixture {
    fn sqlite() -> Fixture {
        Fixture { backend: Backend::Sqlite(tempfile::tempdir().unwrap()), key_hex: random_key_hex() }
    }

    fn postgres() -> Fixture {
        let server = pg::Postgres::start();
        let url = server.create_database("conclave");
        Fixture { backend: Backend::Postgres { server, url }, key_hex: random_key_hex() }
    }

    fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    fn key(&self) -> MasterKey {
        MasterKey::from_hex(&self.key_hex, "test").unwrap()
    }

    /// Opens the store (again: every call is a new instance on the same database, as after a
    /// restart or on another node).
    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(self.key()).await.unwrap()
    }

    async fn open_with(&self, key: MasterKey) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path(), key).await?),
            Backend::Postgres { url, .. } => Arc::new(PgStore::open(url, key).await?),
        })
    }

    /// Runs one statement behind the store's back (to prove what the schema refuses).
    async fn exec_raw(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match &self.backend {
            Backend::Sqlite(dir) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("conclave.db"));
                let pool = sqlx::SqlitePool::connect_with(options).await?;
                let done = sqlx::query(sql).execute(&pool).await;
                pool.close().await;
                Ok(done?.rows_affected())
            }
            Backend::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await?;
                let done = sqlx::query(sql).execute(&pool).await;
                pool.close().await;
                Ok(done?.rows_affected())
            }
        }
    }

    /// Fails if `plaintext` appears anywhere the backend keeps data: SQLite's files; for
    /// PostgreSQL the raw BYTEA columns that hold sealed values, every row of every table as
    /// text (where BYTEA shows as hex, so the hex form is checked too), and after a CHECKPOINT
    /// the database's files and the write-ahead log on disk.
    async fn assert_not_at_rest(&self, plaintext: &str) {
        let needle = plaintext.as_bytes();
        match &self.backend {
            Backend::Sqlite(dir) => {
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let path = entry.unwrap().path();
                    let bytes = std::fs::read(&path).unwrap();
                    assert!(memchr::memmem::find(&bytes, needle).is_none(), "plaintext secret in {}", path.display());
                }
            }
            Backend::Postgres { server, url } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let sealed_columns = [
                    ("meta", "value"),
                    ("projects", "secret_sealed"),
                    ("projects", "previous_secret_sealed"),
                    ("archive_storage", "config_sealed"),
                ];
                let mut sealed_seen = 0;
                for (table, column) in sealed_columns {
                    let values: Vec<Option<Vec<u8>>> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {column} FROM {table}")))
                            .fetch_all(&pool)
                            .await
                            .unwrap();
                    for v in values.into_iter().flatten() {
                        sealed_seen += 1;
                        assert_eq!(v[0], 1, "{table}.{column} holds a sealed value (version 1)");
                        assert!(memchr::memmem::find(&v, needle).is_none(), "plaintext secret in {table}.{column}");
                    }
                }
                assert!(sealed_seen >= 2, "the sealed columns were read (key check and at least one secret)");
                let hex_needle = hex::encode(needle);
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(tables.len() >= 9, "all tables listed: {tables:?}");
                for table in &tables {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT t::text AS row FROM \"{table}\" t")))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                    for r in rows {
                        let text: String = r.get("row");
                        assert!(
                            !text.contains(plaintext) && !text.contains(&hex_needle),
                            "plaintext secret in a row of {table}"
                        );
                    }
                }
                sqlx::query("CHECKPOINT").execute(&pool).await.unwrap();
                let oid: sqlx::postgres::types::Oid =
                    sqlx::query_scalar("SELECT oid FROM pg_database WHERE datname = current_database()")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                pool.close().await;
                let data = server.data_dir();
                let mut files = 0;
                for dir in [data.join("base").join(oid.0.to_string()), data.join("pg_wal")] {
                    for entry in std::fs::read_dir(&dir).unwrap() {
                        let path = entry.unwrap().path();
                        if path.is_file() {
                            files += 1;
                            let bytes = std::fs::read(&path).unwrap();
                            assert!(
                                memchr::memmem::find(&bytes, needle).is_none(),
                                "plaintext secret on disk in {}",
                                path.display()
                            );
                        }
                    }
                }
                assert!(files > 10, "the database's files were scanned");
            }
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Fixture::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Fixture::postgres()).await })*
        }
    };
}

conformance!(
    project_secrets_are_sealed_at_rest_and_survive_reopen,
    a_wrong_master_key_is_refused,
    rotation_keeps_the_previous_secret_for_the_grace_period,
    project_settings_round_trip,
    sessions_round_trip_and_end_once,
    revocations_persist_and_purge,
    callbacks_belong_to_their_project,
    the_audit_log_is_append_only,
    the_webhook_outbox_keeps_order_across_reopen,
    the_webhook_outbox_is_partitioned_by_node_and_taken_over_once,
    archives_compare_and_set_and_page,
    racing_writers_on_two_instances_admit_one,
    archive_storage_is_sealed_and_recipients_stored,
    applications_keep_public_keys_and_rotate_with_grace,
);

const API_KEY: &str = "47000001";
const SECRET: &str = "5e8ff9bf55ba3508199d22e984129be6f0e1c3d2";

fn project(api_key: &str, secret: &str) -> NewProject {
    NewProject { api_key: api_key.into(), name: "t".into(), secret: Zeroizing::new(secret.into()), created_at_ms: 1 }
}

async fn with_project(f: &Fixture) -> Arc<dyn Store> {
    let s = f.open().await;
    s.insert_project(&project(API_KEY, SECRET)).await.unwrap();
    s
}

fn session(id: &str) -> SessionRecord {
    SessionRecord {
        session_id: id.into(),
        api_key: API_KEY.into(),
        media_mode: MediaMode::Routed,
        archive_mode: ArchiveMode::Always,
        e2ee: true,
        max_participants: Some(10),
        location: Some("1.2.3.4".into()),
        archive_name: Some("réunion ✓".into()),
        archive_resolution: Some("1280x720".into()),
        created_at_ms: 42,
        ended_at_ms: None,
    }
}

fn archive(id: &str, session: &str, created: u64) -> ArchiveRecord {
    ArchiveRecord {
        id: id.into(),
        api_key: API_KEY.into(),
        session_id: session.into(),
        status: ArchiveStatus::Started,
        reason: String::new(),
        created_at_ms: created,
        updated_at_ms: created,
        expires_at_ms: None,
        name: Some("n \u{0} ✓".into()),
        output_mode: OutputMode::Individual,
        stream_mode: StreamMode::Auto,
        has_audio: true,
        has_video: true,
        resolution: None,
        layout: None,
        layout_changes: vec![
            (0, None),
            (
                1500,
                Some(conclave_core::archive::ArchiveLayout {
                    kind: "pip".into(),
                    stylesheet: None,
                    screenshare_type: None,
                }),
            ),
        ],
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

fn archive_id(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

async fn project_secrets_are_sealed_at_rest_and_survive_reopen(f: Fixture) {
    {
        let s = f.open().await;
        s.ping().await.unwrap();
        s.insert_project(&project(API_KEY, SECRET)).await.unwrap();
        assert!(matches!(s.insert_project(&project(API_KEY, SECRET)).await, Err(StoreError::Conflict)));
        s.insert_project(&NewProject {
            created_at_ms: 0,
            ..project("46000002", "0123456789abcdef0123456789abcdef01234567")
        })
        .await
        .unwrap();
    }
    f.assert_not_at_rest(SECRET).await;
    let s = f.open().await;
    let p = s.project(API_KEY).await.unwrap().unwrap();
    assert_eq!(p.secret.as_str(), SECRET);
    assert_eq!((p.name.as_str(), p.created_at_ms, p.previous_secret.is_none()), ("t", 1, true));
    assert_eq!(
        (p.default_max_participants, p.pii_policy, p.archive_recipient.as_deref()),
        (None, PiiPolicy::default(), None)
    );
    assert!(!format!("{p:?}").contains(SECRET));
    assert!(s.project("47999999").await.unwrap().is_none());
    let listed = s.list_projects().await.unwrap();
    assert_eq!(listed.iter().map(|p| p.api_key.as_str()).collect::<Vec<_>>(), ["46000002", API_KEY], "oldest first");
    assert!(listed.iter().all(|p| p.rotation_grace_until.is_none()));
}

async fn a_wrong_master_key_is_refused(f: Fixture) {
    with_project(&f).await;
    let other = MasterKey::from_hex(&hex::encode((0u8..32).collect::<Vec<_>>()), "t").unwrap();
    assert!(matches!(f.open_with(other).await, Err(StoreError::WrongMasterKey)));
    // the right key still opens it
    assert_eq!(f.open().await.project(API_KEY).await.unwrap().unwrap().secret.as_str(), SECRET);
}

async fn rotation_keeps_the_previous_secret_for_the_grace_period(f: Fixture) {
    let (old, new) = (SECRET, "a9f3c07b1e4d2a6c8b0f9e3d7c1a5b2e4f6d8c0a");
    let s = with_project(&f).await;
    s.rotate_secret(API_KEY, new, 1000, 5).await.unwrap();
    let p = s.project(API_KEY).await.unwrap().unwrap();
    let at = |now| p.candidate_secrets(now).map(|b| std::str::from_utf8(b).unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(at(999), [new, old]);
    assert_eq!(at(1000), [new]);
    assert_eq!(s.list_projects().await.unwrap()[0].rotation_grace_until, Some(1000));
    assert!(matches!(s.rotate_secret("2", new, 1, 1).await, Err(StoreError::NotFound)));
    f.assert_not_at_rest(old).await;
    f.assert_not_at_rest(new).await;
}

async fn project_settings_round_trip(f: Fixture) {
    let s = with_project(&f).await;
    s.set_default_max_participants(API_KEY, Some(5)).await.unwrap();
    s.set_pii_policy(API_KEY, PiiPolicy::Reject).await.unwrap();
    let p = f.open().await.project(API_KEY).await.unwrap().unwrap();
    assert_eq!((p.default_max_participants, p.pii_policy), (Some(5), PiiPolicy::Reject));
    s.set_default_max_participants(API_KEY, None).await.unwrap();
    assert_eq!(s.project(API_KEY).await.unwrap().unwrap().default_max_participants, None);
    assert!(matches!(s.set_default_max_participants("2", Some(1)).await, Err(StoreError::NotFound)));
    assert!(matches!(s.set_pii_policy("2", PiiPolicy::Off).await, Err(StoreError::NotFound)));
    assert!(matches!(s.set_archive_recipient("2", Some("age1xyz")).await, Err(StoreError::NotFound)));
}

async fn sessions_round_trip_and_end_once(f: Fixture) {
    let s = with_project(&f).await;
    let rec = session("1_abc");
    s.insert_session(&rec).await.unwrap();
    let relayed = SessionRecord {
        session_id: "1_rel".into(),
        media_mode: MediaMode::Relayed,
        archive_mode: ArchiveMode::Manual,
        e2ee: false,
        max_participants: None,
        location: None,
        archive_name: None,
        archive_resolution: None,
        ..rec.clone()
    };
    s.insert_session(&relayed).await.unwrap();
    assert!(matches!(s.insert_session(&rec).await, Err(StoreError::Conflict)));
    let s = f.open().await;
    assert_eq!(s.session("1_abc").await.unwrap().unwrap(), rec);
    assert_eq!(s.session("1_rel").await.unwrap().unwrap(), relayed);
    assert!(s.session("1_zzz").await.unwrap().is_none());
    let foreign = SessionRecord { session_id: "1_x".into(), api_key: "999".into(), ..rec.clone() };
    assert!(s.insert_session(&foreign).await.is_err(), "sessions must belong to an existing project");
    assert!(s.end_session("1_abc", 77).await.unwrap());
    assert!(!s.end_session("1_abc", 78).await.unwrap(), "already ended");
    assert!(!s.end_session("1_missing", 5).await.unwrap());
    assert_eq!(s.session("1_abc").await.unwrap().unwrap().ended_at_ms, Some(77));
}

async fn revocations_persist_and_purge(f: Fixture) {
    {
        let s = with_project(&f).await;
        s.revoke_token(&[7; 32], API_KEY, "1_s", 50).await.unwrap();
        // revoking the same token again replaces the row (the later expiry wins)
        s.revoke_token(&[7; 32], API_KEY, "1_s", 99).await.unwrap();
        s.revoke_token(&[9; 32], API_KEY, "1_s", 200).await.unwrap();
    }
    let s = f.open().await;
    assert!(s.is_token_revoked(&[7; 32]).await.unwrap());
    assert!(!s.is_token_revoked(&[8; 32]).await.unwrap());
    assert_eq!(s.purge_revocations(99).await.unwrap(), 0, "not expired yet at 99");
    assert_eq!(s.purge_revocations(100).await.unwrap(), 1);
    assert!(!s.is_token_revoked(&[7; 32]).await.unwrap());
    assert!(s.is_token_revoked(&[9; 32]).await.unwrap());
}

async fn callbacks_belong_to_their_project(f: Fixture) {
    let s = with_project(&f).await;
    s.insert_project(&project("46000002", "0123456789abcdef0123456789abcdef01234567")).await.unwrap();
    let cb = |id: &str, at| CallbackRecord {
        id: id.into(),
        api_key: API_KEY.into(),
        group: "connection".into(),
        event: "created".into(),
        url: "https://x.example/hook".into(),
        created_at_ms: at,
    };
    s.insert_callback(&cb("cb2", 3)).await.unwrap();
    s.insert_callback(&cb("cb1", 3)).await.unwrap();
    s.insert_callback(&cb("cb0", 4)).await.unwrap();
    assert!(matches!(s.insert_callback(&cb("cb1", 9)).await, Err(StoreError::Conflict)));
    let foreign = CallbackRecord { api_key: "999".into(), ..cb("cbx", 1) };
    assert!(s.insert_callback(&foreign).await.is_err(), "callbacks must belong to an existing project");
    let s = f.open().await;
    let listed = s.callbacks(API_KEY).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["cb1", "cb2", "cb0"],
        "by creation time, then ID"
    );
    assert_eq!(listed[0], cb("cb1", 3));
    assert!(s.callbacks("46000002").await.unwrap().is_empty());
    assert!(!s.delete_callback("46000002", "cb1").await.unwrap(), "another project cannot delete it");
    assert!(s.delete_callback(API_KEY, "cb1").await.unwrap());
    assert!(!s.delete_callback(API_KEY, "cb1").await.unwrap());
    assert_eq!(s.callbacks(API_KEY).await.unwrap().len(), 2);
}

async fn the_audit_log_is_append_only(f: Fixture) {
    let s = with_project(&f).await;
    let entry = |i: u64, key: Option<&str>| AuditEntry {
        seq: 0,
        at_ms: 1000 + i,
        actor: format!("key:{i}"),
        source: "127.0.0.1".into(),
        api_key: key.map(str::to_owned),
        action: "connection.force_disconnect".into(),
        target: format!("1_s/c{i}"),
        detail: r#"{"reason":"test"}"#.into(),
    };
    for i in 0..4 {
        s.append_audit(&entry(i, if i == 2 { None } else { Some(API_KEY) })).await.unwrap();
    }
    s.append_audit(&entry(4, Some("46000002"))).await.unwrap();
    let all = s.audit_entries(None, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [1004, 1003, 1002, 1001, 1000], "newest first");
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "the store assigns increasing sequence numbers");
    assert_eq!(all[1], AuditEntry { seq: all[1].seq, ..entry(3, Some(API_KEY)) });
    let mine = s.audit_entries(Some(API_KEY), 2).await.unwrap();
    assert_eq!(mine.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [1003, 1001], "one project's, limited");
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE at_ms = 1000",
    ] {
        let refused = f.exec_raw(sql).await.expect_err(sql);
        assert!(refused.to_string().contains("append-only"), "{sql}: {refused}");
    }
    if f.is_postgres() {
        assert!(f.exec_raw("TRUNCATE audit_log").await.is_err(), "TRUNCATE is refused too");
    }
    assert_eq!(f.open().await.audit_entries(None, 100).await.unwrap(), all, "nothing changed");
}

async fn the_webhook_outbox_keeps_order_across_reopen(f: Fixture) {
    let record = |i: u8| OutboxRecord {
        seq: 0,
        node_id: String::new(),
        api_key: API_KEY.into(),
        session_id: "1_s".into(),
        url: format!("https://x.example/{i}"),
        event: "connectionCreated".into(),
        body: vec![i, 0, 255, b'{'],
        created_at_ms: 10 - u64::from(i),
    };
    let mut seqs = Vec::new();
    {
        let s = with_project(&f).await;
        for i in 0..4 {
            seqs.push(s.enqueue_webhook(&record(i)).await.unwrap());
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing sequence numbers: {seqs:?}");
        s.delete_webhook(seqs[1]).await.unwrap();
        s.delete_webhook(123_456).await.unwrap(); // unknown: nothing to do
    }
    let s = f.open().await;
    let pending = s.pending_webhooks("").await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [seqs[0], seqs[2], seqs[3]],
        "oldest first by sequence, not by time"
    );
    assert_eq!(pending[1], OutboxRecord { seq: seqs[2], ..record(2) });
    assert!(s.enqueue_webhook(&record(9)).await.unwrap() > seqs[3]);
}

async fn the_webhook_outbox_is_partitioned_by_node_and_taken_over_once(f: Fixture) {
    let record = |node: &str, i: u8| OutboxRecord {
        seq: 0,
        node_id: node.into(),
        api_key: API_KEY.into(),
        session_id: "1_s".into(),
        url: format!("https://x.example/{i}"),
        event: "streamCreated".into(),
        body: vec![i],
        created_at_ms: u64::from(i),
    };
    let s = with_project(&f).await;
    assert_eq!(s.webhook_backlog().await.unwrap(), (0, None));
    let mut seqs = Vec::new();
    for (node, i) in [("node-a", 0), ("node-b", 1), ("node-a", 2), ("node-b", 3)] {
        seqs.push(s.enqueue_webhook(&record(node, i)).await.unwrap());
    }
    assert_eq!(s.webhook_backlog().await.unwrap(), (4, Some(0)), "all nodes, the oldest creation time");
    let seqs_of = |rows: Vec<OutboxRecord>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs_of(s.pending_webhooks("node-a").await.unwrap()), [seqs[0], seqs[2]], "a node sees only its own");
    let mut nodes = s.webhook_outbox_nodes().await.unwrap();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    // Two instances race to take over node-b's rows: exactly one gets them, all of them.
    let other = f.open().await;
    let (x, y) = tokio::join!(s.claim_webhooks("node-b", "node-a"), other.claim_webhooks("node-b", "node-c"));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 2, "{x:?} {y:?}");
    assert!(x.is_empty() || y.is_empty(), "one taker: {x:?} {y:?}");
    let (winner, taken) = if x.is_empty() { ("node-c", y) } else { ("node-a", x) };
    assert_eq!(seqs_of(taken.clone()), [seqs[1], seqs[3]], "oldest first");
    assert!(taken.iter().all(|r| r.node_id == winner));
    assert_eq!(taken[0], OutboxRecord { seq: seqs[1], node_id: winner.into(), ..record("", 1) });
    assert!(s.pending_webhooks("node-b").await.unwrap().is_empty());
    assert!(s.claim_webhooks("node-b", "node-a").await.unwrap().is_empty(), "nothing left to take");
    assert_eq!(s.pending_webhooks(winner).await.unwrap().len(), if winner == "node-a" { 4 } else { 2 });
}

async fn archives_compare_and_set_and_page(f: Fixture) {
    let s = with_project(&f).await;
    for i in 0..5u64 {
        s.insert_archive(&archive(&archive_id(i), if i % 2 == 0 { "A" } else { "B" }, 100 + i)).await.unwrap();
    }
    assert!(matches!(s.insert_archive(&archive(&archive_id(0), "A", 1)).await, Err(StoreError::Conflict)));
    let foreign = ArchiveRecord { api_key: "999".into(), ..archive(&archive_id(9), "A", 1) };
    assert!(s.insert_archive(&foreign).await.is_err(), "archives must belong to an existing project");
    let s = f.open().await;
    let mut a = s.archive(&archive_id(4)).await.unwrap().unwrap();
    assert_eq!(a, archive(&archive_id(4), "A", 104), "the whole record round-trips");
    assert!(s.archive(&archive_id(8)).await.unwrap().is_none());
    a.status = ArchiveStatus::Stopped;
    a.reason = "user initiated".into();
    a.expires_at_ms = Some(9_000);
    a.size = 12_345;
    assert!(s.update_archive(&a, ArchiveStatus::Started).await.unwrap());
    assert!(!s.update_archive(&a, ArchiveStatus::Started).await.unwrap(), "a stale expected status must not overwrite");
    assert_eq!(s.archive(&a.id).await.unwrap().unwrap(), a);
    let (total, page) = s.list_archives(API_KEY, None, 1, 2).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(page.iter().map(|r| r.created_at_ms).collect::<Vec<_>>(), [103, 102], "newest first, offset 1");
    let (total, page) = s.list_archives(API_KEY, Some("A"), 0, 50).await.unwrap();
    assert_eq!((total, page.len()), (3, 3));
    assert_eq!(s.list_archives("46000002", None, 0, 50).await.unwrap(), (0, vec![]));
    let mut b = s.archive(&archive_id(0)).await.unwrap().unwrap();
    b.status = ArchiveStatus::Deleted;
    assert!(s.update_archive(&b, ArchiveStatus::Started).await.unwrap());
    assert_eq!(s.list_archives(API_KEY, None, 0, 50).await.unwrap().0, 4, "deleted archives leave the list");
    assert_eq!(s.archive(&b.id).await.unwrap().unwrap().status, ArchiveStatus::Deleted, "but a GET still says so");
    let stopped = s.archives_in_status(&[ArchiveStatus::Stopped]).await.unwrap();
    assert_eq!(stopped, [a.clone()]);
    let mixed = s.archives_in_status(&[ArchiveStatus::Stopped, ArchiveStatus::Started]).await.unwrap();
    assert_eq!(
        mixed.iter().map(|r| r.created_at_ms).collect::<Vec<_>>(),
        [104, 101, 102, 103],
        "by status as asked, each oldest first"
    );
    let counts = s.archive_status_counts().await.unwrap();
    assert_eq!(counts.len(), ArchiveStatus::ALL.len(), "every status is counted");
    for (status, n) in counts {
        let expected = match status {
            ArchiveStatus::Started => 3,
            ArchiveStatus::Stopped | ArchiveStatus::Deleted => 1,
            _ => 0,
        };
        assert_eq!(n, expected, "{status:?}");
    }
}

async fn archive_storage_is_sealed_and_recipients_stored(f: Fixture) {
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    {
        let s = with_project(&f).await;
        assert!(s.archive_storage(API_KEY).await.unwrap().is_none());
        s.set_archive_storage(API_KEY, Some(r#"{"secretKey":"old"}"#), 4).await.unwrap();
        s.set_archive_storage(API_KEY, Some(&format!(r#"{{"secretKey":"{secret}"}}"#)), 5).await.unwrap();
        s.set_archive_recipient(API_KEY, Some("age1xyz")).await.unwrap();
    }
    f.assert_not_at_rest(secret).await;
    let s = f.open().await;
    assert_eq!(
        s.archive_storage(API_KEY).await.unwrap().unwrap().as_str(),
        format!(r#"{{"secretKey":"{secret}"}}"#),
        "the latest target replaced the first"
    );
    assert_eq!(s.project(API_KEY).await.unwrap().unwrap().archive_recipient.as_deref(), Some("age1xyz"));
    s.set_archive_recipient(API_KEY, None).await.unwrap();
    assert_eq!(s.project(API_KEY).await.unwrap().unwrap().archive_recipient, None);
    s.set_archive_storage(API_KEY, None, 6).await.unwrap();
    assert!(s.archive_storage(API_KEY).await.unwrap().is_none());
}

/// Two store instances on one database (two nodes): of many writers racing the same archive
/// from the same status, exactly one wins; of two inserts of one project, one is a Conflict.
async fn racing_writers_on_two_instances_admit_one(f: Fixture) {
    let (a, b) = (with_project(&f).await, f.open().await);
    a.insert_archive(&archive(&archive_id(1), "A", 100)).await.unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.spawn(async move {
            let mut r = archive(&archive_id(1), "A", 100);
            r.status = ArchiveStatus::Stopped;
            r.reason = format!("writer {i}");
            store.update_archive(&r, ArchiveStatus::Started).await.unwrap().then_some(i)
        });
    }
    let winners: Vec<u64> = racers.join_all().await.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    assert_eq!(b.archive(&archive_id(1)).await.unwrap().unwrap().reason, format!("writer {}", winners[0]));
    let twin = project("46000003", SECRET);
    let (x, y) = tokio::join!(a.insert_project(&twin), b.insert_project(&twin));
    assert!(
        matches!((&x, &y), (Ok(()), Err(StoreError::Conflict)) | (Err(StoreError::Conflict), Ok(()))),
        "{x:?} {y:?}"
    );
}

const APP_ID: &str = "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f";

async fn applications_keep_public_keys_and_rotate_with_grace(f: Fixture) {
    let s = with_project(&f).await;
    let first = vec![1u8; 300];
    let app = NewApplication {
        application_id: APP_ID.into(),
        name: "app".into(),
        public_key_der: first.clone(),
        webhook_secret: Zeroizing::new("b4c1d2e3f4a5968778695a4b3c2d1e0f9a8b7c6d".into()),
        created_at_ms: 5,
    };
    s.insert_application(&app).await.unwrap();
    assert!(matches!(s.insert_application(&app).await, Err(StoreError::Conflict)));
    let p = s.project(APP_ID).await.unwrap().unwrap();
    assert_eq!(p.kind, ProjectKind::Application);
    assert_eq!(p.candidate_secrets(0).count(), 0, "an application never verifies with a secret");
    assert_eq!(p.secret.as_str(), "b4c1d2e3f4a5968778695a4b3c2d1e0f9a8b7c6d", "the webhook secret");
    f.assert_not_at_rest("b4c1d2e3f4a5968778695a4b3c2d1e0f9a8b7c6d").await;
    assert_eq!(p.candidate_public_keys(0).map(|k| k.der.clone()).collect::<Vec<_>>(), vec![first.clone()]);
    let plain = s.project(API_KEY).await.unwrap().unwrap();
    assert_eq!(plain.kind, ProjectKind::Project);
    assert_eq!(plain.candidate_public_keys(0).count(), 0);
    // Rotation: the first key verifies until 1000 (unix s), then only the second.
    let second = vec![2u8; 300];
    s.rotate_application_key(APP_ID, &second, 1000, 500_000).await.unwrap();
    assert!(matches!(s.rotate_application_key(APP_ID, &second, 1000, 500_000).await, Err(StoreError::Conflict)));
    let p = s.project(APP_ID).await.unwrap().unwrap();
    let at = |now| p.candidate_public_keys(now).map(|k| k.der.clone()).collect::<Vec<_>>();
    assert_eq!(at(999), vec![second.clone(), first.clone()]);
    assert_eq!(at(1000), vec![second.clone()]);
    // A later rotation drops keys whose grace is over.
    let third = vec![3u8; 300];
    s.rotate_application_key(APP_ID, &third, 3000, 2_000_000).await.unwrap();
    let p = s.project(APP_ID).await.unwrap().unwrap();
    assert_eq!(p.public_keys.len(), 2, "the first key was dropped");
    assert_eq!(p.public_keys[0].der, third);
    assert_eq!(p.public_keys[0].key_id, public_key_id(&third));
    // Only applications rotate keys; a project or an unknown ID is NotFound.
    assert!(matches!(s.rotate_application_key(API_KEY, &third, 1, 1).await, Err(StoreError::NotFound)));
    assert!(matches!(s.rotate_application_key("nope", &third, 1, 1).await, Err(StoreError::NotFound)));
    let kinds: Vec<_> = s.list_projects().await.unwrap().into_iter().map(|p| (p.api_key, p.kind)).collect();
    assert!(kinds.contains(&(APP_ID.to_owned(), ProjectKind::Application)));
    assert!(kinds.contains(&(API_KEY.to_owned(), ProjectKind::Project)));
}
