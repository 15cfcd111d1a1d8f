-- Signaling: revoked tokens (kicked participants), per-project participant limit, callbacks.
ALTER TABLE projects ADD COLUMN default_max_participants BIGINT;

CREATE TABLE revoked_tokens (
    fingerprint  BYTEA PRIMARY KEY NOT NULL,  -- SHA-256 of the raw token; the token itself is never stored
    api_key      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    expires_at   BIGINT NOT NULL              -- unix seconds; rows past this can be purged
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens(expires_at);

CREATE TABLE callbacks (
    id             TEXT PRIMARY KEY NOT NULL,
    api_key        TEXT NOT NULL REFERENCES projects(api_key),
    grp            TEXT NOT NULL,
    event          TEXT NOT NULL,
    url            TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX callbacks_by_project ON callbacks(api_key);
