-- The node that wrote (or took over) an undelivered webhook: in cluster mode a node replays
-- only its own rows, and takes over those of nodes whose heartbeat has lapsed.
ALTER TABLE webhook_outbox ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
CREATE INDEX webhook_outbox_node ON webhook_outbox (node_id, seq);
