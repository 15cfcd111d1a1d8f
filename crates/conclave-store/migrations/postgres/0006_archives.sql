-- Archives (compat doc 7): one row per archive, kept as a tombstone with status `deleted`
-- after DELETE (metadata wiped) so that a later GET can say so.
CREATE TABLE archives (
    id                      TEXT PRIMARY KEY,
    api_key                 TEXT NOT NULL REFERENCES projects(api_key),
    session_id              TEXT NOT NULL,
    status                  TEXT NOT NULL,
    reason                  TEXT NOT NULL DEFAULT '',
    -- Everything else about the archive (name, modes, streams, size, sha256, file location…)
    -- as one JSON document, so new fields need no migration. TEXT rather than JSONB: the
    -- document is opaque to SQL, and JSONB refuses the \u0000 escape that a name may carry.
    doc                     TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL,
    -- When an `available` archive expires; the sweeper's index.
    expires_at_ms           BIGINT
);
CREATE INDEX archives_by_project ON archives (api_key, created_at_ms DESC);
CREATE INDEX archives_by_session ON archives (session_id, status);
CREATE INDEX archives_by_status ON archives (status, expires_at_ms);

-- Per-project upload target; the whole config (with the secret key) is sealed.
CREATE TABLE archive_storage (
    api_key        TEXT PRIMARY KEY REFERENCES projects(api_key),
    config_sealed  BYTEA NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- Public key archives are encrypted to (age X25519 or ssh-rsa); not a secret.
ALTER TABLE projects ADD COLUMN archive_recipient TEXT;
