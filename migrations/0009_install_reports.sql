-- Outcomes of the agent install script (deploy/install/install-agent.sh), one row per report.
-- client_id and site_id come from the enrollment token that authenticated the report, never
-- from its body. status: success | failed; step: the step that failed, or the last one run.
CREATE TABLE IF NOT EXISTS install_reports (
    id                   TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL REFERENCES clients (id),
    site_id              TEXT NOT NULL REFERENCES sites (id),
    enrollment_token_id  TEXT NOT NULL,
    hostname             TEXT NOT NULL,
    os                   TEXT NOT NULL,
    arch                 TEXT NOT NULL,
    agent_version        TEXT,
    status               TEXT NOT NULL CHECK (status IN ('success', 'failed')),
    step                 TEXT NOT NULL,
    message              TEXT NOT NULL,
    source_ip            TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS install_reports_client_idx ON install_reports (client_id, created_at);
CREATE INDEX IF NOT EXISTS install_reports_site_idx ON install_reports (site_id, created_at);
