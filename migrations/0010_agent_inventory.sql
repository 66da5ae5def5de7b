-- User inventory (issue 6): the last users report of each agent (OpAMP custom message
-- `io.rmm.inventory` / `users`), replaced on every report.
CREATE TABLE IF NOT EXISTS agent_inventory (
    agent_id       TEXT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    collected_at   BIGINT NOT NULL,
    received_at    BIGINT NOT NULL,
    users          TEXT NOT NULL,
    sessions       TEXT NOT NULL
);

-- Deleting an agent, site or client used to leave its policy assignments and stored
-- configuration behind; the stores now delete them with their target. Remove the leftovers.
DELETE FROM policy_assignments WHERE scope = 'agent' AND target_id NOT IN (SELECT id FROM agents);
DELETE FROM policy_assignments WHERE scope = 'site' AND target_id NOT IN (SELECT id FROM sites);
DELETE FROM policy_assignments WHERE scope = 'client' AND target_id NOT IN (SELECT id FROM clients);
DELETE FROM agent_configs WHERE agent_id NOT IN (SELECT id FROM agents);
