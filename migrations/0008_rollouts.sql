-- Rollouts (issue 7): per channel a target version and how fast it reaches agents, and the
-- update state of each agent.
CREATE TABLE rollouts (
    channel TEXT PRIMARY KEY,
    target_version TEXT NOT NULL,
    -- The target before the last change, for the downgrade check.
    previous_version TEXT,
    percent BIGINT NOT NULL,
    max_concurrent BIGINT NOT NULL,
    failure_percent BIGINT NOT NULL,
    min_attempts BIGINT NOT NULL,
    allow_downgrade BIGINT NOT NULL DEFAULT 0,
    paused BIGINT NOT NULL DEFAULT 0,
    pause_reason TEXT,
    -- Auto-pause counts updates offered since (set on resume, so old failures do not pause
    -- the rollout again at once).
    counted_since BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The latest update offered to each agent and how it went.
CREATE TABLE agent_updates (
    agent_id TEXT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    release_id TEXT NOT NULL,
    -- The rollout's channel; NULL when an operator forced the update.
    channel TEXT,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    -- offered, downloading, installed, failed, rolled_back
    status TEXT NOT NULL,
    reason TEXT,
    forced BIGINT NOT NULL DEFAULT 0,
    allow_downgrade BIGINT NOT NULL DEFAULT 0,
    from_version TEXT,
    offered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX agent_updates_by_channel ON agent_updates (channel, version, status);
