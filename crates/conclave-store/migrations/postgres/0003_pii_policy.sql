-- What to do when a token's connection_data looks like personal data: off, warn or reject.
ALTER TABLE projects ADD COLUMN pii_policy TEXT NOT NULL DEFAULT 'warn';
