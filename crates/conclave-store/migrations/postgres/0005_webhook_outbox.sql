-- Webhooks not yet delivered: written before the first attempt, deleted once delivered or
-- abandoned, and replayed in order at start-up, so a restart loses no callback.
CREATE TABLE webhook_outbox (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    url            TEXT NOT NULL,
    event          TEXT NOT NULL,
    body           BYTEA NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
