-- Conclave embedded schema, version 1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE projects (
    api_key                 TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL,
    secret_sealed           BLOB NOT NULL,
    previous_secret_sealed  BLOB,
    previous_valid_until    INTEGER,
    created_at_ms           INTEGER NOT NULL,
    rotated_at_ms           INTEGER
);

CREATE TABLE sessions (
    session_id          TEXT PRIMARY KEY NOT NULL,
    api_key             TEXT NOT NULL REFERENCES projects(api_key),
    media_mode          TEXT NOT NULL CHECK (media_mode IN ('relayed', 'routed')),
    archive_mode        TEXT NOT NULL CHECK (archive_mode IN ('manual', 'always')),
    e2ee                INTEGER NOT NULL,
    max_participants    INTEGER,
    location            TEXT,
    archive_name        TEXT,
    archive_resolution  TEXT,
    created_at_ms       INTEGER NOT NULL,
    ended_at_ms         INTEGER
);

CREATE INDEX sessions_by_project ON sessions(api_key, created_at_ms);
