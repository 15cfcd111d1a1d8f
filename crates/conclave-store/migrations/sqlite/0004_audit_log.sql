-- Append-only record of administrative actions: who (API key or CLI, and source), what, when.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    actor      TEXT NOT NULL,     -- "key:<apiKey>", "cli:<user>", "moderator:<connectionId>"
    source     TEXT NOT NULL,     -- source IP, or "local"
    api_key    TEXT,              -- the project acted on
    action     TEXT NOT NULL,     -- e.g. connection.force_disconnect
    target     TEXT NOT NULL,     -- e.g. the session and connection IDs
    detail     TEXT NOT NULL      -- JSON object
);
CREATE INDEX audit_by_project ON audit_log(api_key, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
