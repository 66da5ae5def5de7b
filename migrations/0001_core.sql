-- Core fleet state: tenants (clients, sites), users and API tokens, enrollment tokens,
-- agents, audit log, server settings. Portable between SQLite and PostgreSQL.

-- A customer of the managed-service provider.
CREATE TABLE IF NOT EXISTS clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS clients_name_key ON clients (lower(name));

-- A location of a client; agents belong to a site.
CREATE TABLE IF NOT EXISTS sites (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sites_client_name_key ON sites (client_id, lower(name));

-- People. role: admin | operator | viewer; client_id NULL = all clients.
CREATE TABLE IF NOT EXISTS users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    client_id      TEXT REFERENCES clients (id),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);

-- Automation credentials: SHA-256 of the token, never the token.
CREATE TABLE IF NOT EXISTS api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    token_prefix  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    client_id     TEXT REFERENCES clients (id),
    created_by    TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_hash_key ON api_tokens (token_hash);

-- Tokens a host presents once to enroll into a site.
CREATE TABLE IF NOT EXISTS enrollment_tokens (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL,
    token_prefix  TEXT NOT NULL,
    client_id     TEXT NOT NULL REFERENCES clients (id),
    site_id       TEXT NOT NULL REFERENCES sites (id),
    description   TEXT,
    labels        TEXT NOT NULL DEFAULT '{}',
    max_uses      BIGINT NOT NULL,
    uses          BIGINT NOT NULL DEFAULT 0,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    created_by    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS enrollment_tokens_hash_key ON enrollment_tokens (token_hash);
CREATE INDEX IF NOT EXISTS enrollment_tokens_site_idx ON enrollment_tokens (site_id);

-- Enrolled hosts. status: pending | online | offline (filled in by the OpAMP server).
-- client_id is the site's client, kept here so one host enrolls once per client.
CREATE TABLE IF NOT EXISTS agents (
    id                   TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL REFERENCES clients (id),
    site_id              TEXT NOT NULL REFERENCES sites (id),
    host_id              TEXT NOT NULL,
    hostname             TEXT NOT NULL,
    os                   TEXT NOT NULL,
    arch                 TEXT NOT NULL,
    agent_version        TEXT NOT NULL,
    labels               TEXT NOT NULL DEFAULT '{}',
    metrics_address      TEXT,
    status               TEXT NOT NULL DEFAULT 'pending',
    last_seen            BIGINT,
    secret_hash          TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '{}',
    health               TEXT NOT NULL DEFAULT '{}',
    enrollment_token_id  TEXT,
    enrolled_at          BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS agents_client_host_key ON agents (client_id, host_id);
CREATE UNIQUE INDEX IF NOT EXISTS agents_secret_hash_key ON agents (secret_hash);
CREATE INDEX IF NOT EXISTS agents_site_idx ON agents (site_id);
CREATE INDEX IF NOT EXISTS agents_status_idx ON agents (status);

-- Agent labels, one row per key, for filtering; agents.labels holds the same map as JSON.
CREATE TABLE IF NOT EXISTS agent_labels (
    agent_id  TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX IF NOT EXISTS agent_labels_kv_idx ON agent_labels (key, value);

-- Who changed what, when, from where. No foreign keys: entries outlive what they name.
CREATE TABLE IF NOT EXISTS audit_log (
    id           TEXT PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    actor_name   TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    client_id    TEXT,
    details      TEXT NOT NULL DEFAULT '{}',
    source_ip    TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_created_idx ON audit_log (created_at);
CREATE INDEX IF NOT EXISTS audit_log_client_idx ON audit_log (client_id, created_at);

-- Server-wide settings generated on first start (for example the JWT signing key).
CREATE TABLE IF NOT EXISTS settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
