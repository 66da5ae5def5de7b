-- OpAMP session state of each agent (issue 5), written by the OpAMP server.
-- instance_uid: the OpAMP instance uid the agent last used (canonical UUID text); usually
--   equal to id, but a third-party client that cannot switch ids keeps its own.
-- capabilities: AgentCapabilities bits of the last message.
-- effective_config: JSON {"files": {name: {"content_type", "body"}}}; effective_config_hash:
--   hex SHA-256 of the reported EffectiveConfig message.
-- remote_config_status, package_statuses: JSON copies of the last reports.
-- opamp_transport: websocket | http, of the last session.
ALTER TABLE agents ADD COLUMN instance_uid TEXT;
ALTER TABLE agents ADD COLUMN capabilities BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN effective_config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN effective_config_hash TEXT;
ALTER TABLE agents ADD COLUMN remote_config_status TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN package_statuses TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN opamp_transport TEXT;
CREATE INDEX IF NOT EXISTS agents_instance_uid_idx ON agents (instance_uid);
