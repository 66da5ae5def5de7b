-- Release catalog (issue 7): agent builds by version, OS, architecture and channel. Each row
-- was verified against a configured release public key at insert (key_id names it).
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    channel TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    source_url TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (channel, version, os, arch)
);

CREATE INDEX releases_by_platform ON releases (channel, os, arch);
