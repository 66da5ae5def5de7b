-- Policies (issue 6): documents of the policy schema, their assignments, and the effective
-- configuration last computed for each agent.

-- A policy document. client_id NULL = global (MSP-wide, managed by all-clients users only).
CREATE TABLE IF NOT EXISTS policies (
    id          TEXT PRIMARY KEY,
    client_id   TEXT,
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS policies_client_name_key ON policies (COALESCE(client_id, ''), lower(name));

-- Where a policy applies. scope: global | client | site | agent; target_id: the client, site
-- or agent id ('' for global); client_id: the target's client (NULL for global), for tenancy.
-- One scope target holds one policy per priority; a policy is assigned once per target.
CREATE TABLE IF NOT EXISTS policy_assignments (
    id          TEXT PRIMARY KEY,
    policy_id   TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL CHECK (scope IN ('global', 'client', 'site', 'agent')),
    target_id   TEXT NOT NULL,
    client_id   TEXT,
    priority    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS policy_assignments_slot_key ON policy_assignments (scope, target_id, priority);
CREATE UNIQUE INDEX IF NOT EXISTS policy_assignments_target_key ON policy_assignments (policy_id, scope, target_id);
CREATE INDEX IF NOT EXISTS policy_assignments_target_idx ON policy_assignments (scope, target_id);

-- The effective configuration last computed for each agent: the TOML sent as remote config
-- and its hash (hex SHA-256 of the encoded AgentConfigMap), to push and to detect drift.
CREATE TABLE IF NOT EXISTS agent_configs (
    agent_id     TEXT PRIMARY KEY,
    config_hash  TEXT NOT NULL,
    config       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
