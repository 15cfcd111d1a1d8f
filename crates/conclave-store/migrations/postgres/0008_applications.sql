-- Vonage Video applications: rows of `projects` with kind 'application' (the application ID
-- where the API key is). Their secret_sealed only signs their webhooks: applications
-- authenticate only with the public keys below. Conclave never stores a private key.
ALTER TABLE projects ADD COLUMN kind TEXT NOT NULL DEFAULT 'project' CHECK (kind IN ('project', 'application'));

CREATE TABLE application_keys (
    api_key        TEXT NOT NULL REFERENCES projects(api_key),
    key_id         TEXT NOT NULL,     -- hex SHA-256 of the DER, first 16 characters
    public_key     BYTEA NOT NULL,    -- SubjectPublicKeyInfo DER of an RSA key (not a secret)
    created_at_ms  BIGINT NOT NULL,
    valid_until    BIGINT,            -- unix s; NULL for the current key, set on rotation
    PRIMARY KEY (api_key, key_id)
);
