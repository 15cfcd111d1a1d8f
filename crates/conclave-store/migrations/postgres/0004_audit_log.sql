-- Append-only record of administrative actions: who (API key or CLI, and source), what, when.
CREATE TABLE audit_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,     -- "key:<apiKey>", "cli:<user>", "moderator:<connectionId>"
    source     TEXT NOT NULL,     -- source IP, or "local"
    api_key    TEXT,              -- the project acted on
    action     TEXT NOT NULL,     -- e.g. connection.force_disconnect
    target     TEXT NOT NULL,     -- e.g. the session and connection IDs
    detail     TEXT NOT NULL      -- JSON object
);
CREATE INDEX audit_by_project ON audit_log(api_key, seq);

-- Like the SQLite triggers: any UPDATE, DELETE or TRUNCATE aborts.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
