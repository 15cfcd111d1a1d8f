-- Conclave schema for PostgreSQL (cluster mode), version 1. Mirrors migrations/sqlite: the
-- same tables and columns, with BIGINT for integers (milliseconds, seconds, counts), BYTEA for
-- sealed blobs and BOOLEAN for flags.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

CREATE TABLE projects (
    api_key                 TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL,
    secret_sealed           BYTEA NOT NULL,
    previous_secret_sealed  BYTEA,
    previous_valid_until    BIGINT,
    created_at_ms           BIGINT NOT NULL,
    rotated_at_ms           BIGINT
);

CREATE TABLE sessions (
    session_id          TEXT PRIMARY KEY NOT NULL,
    api_key             TEXT NOT NULL REFERENCES projects(api_key),
    media_mode          TEXT NOT NULL CHECK (media_mode IN ('relayed', 'routed')),
    archive_mode        TEXT NOT NULL CHECK (archive_mode IN ('manual', 'always')),
    e2ee                BOOLEAN NOT NULL,
    max_participants    BIGINT,
    location            TEXT,
    archive_name        TEXT,
    archive_resolution  TEXT,
    created_at_ms       BIGINT NOT NULL,
    ended_at_ms         BIGINT
);

CREATE INDEX sessions_by_project ON sessions(api_key, created_at_ms);
