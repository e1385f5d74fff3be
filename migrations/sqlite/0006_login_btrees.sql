-- Fewer B-trees written and read per login (BENCHMARKS.md, session 7).
--
-- mfa_challenges and sessions become WITHOUT ROWID tables: a row lives in
-- its primary key's B-tree, so storing, finding or spending a token is one
-- B-tree instead of two (the rowid table and the key's index). A challenge
-- also keeps the case-folded username it was issued for, so /login-2fa
-- checks it without reading the users table. Usernames never change.
CREATE TABLE mfa_challenges_new (
    token_hash    BLOB    NOT NULL PRIMARY KEY,  -- the token's key (auth::tokens)
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    username_key  TEXT    NOT NULL,
    expires_at    BIGINT  NOT NULL
) WITHOUT ROWID;
INSERT INTO mfa_challenges_new (token_hash, user_id, username_key, expires_at)
SELECT c.token_hash, c.user_id, u.username_key, c.expires_at
FROM mfa_challenges c JOIN users u ON u.id = c.user_id;
DROP TABLE mfa_challenges;
ALTER TABLE mfa_challenges_new RENAME TO mfa_challenges;
CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges(expires_at);

CREATE TABLE sessions_new (
    token_hash    BLOB    NOT NULL PRIMARY KEY,  -- the token's key (auth::tokens)
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    public_id     TEXT    NOT NULL,
    client_addr   TEXT,
    user_agent    TEXT
) WITHOUT ROWID;
INSERT INTO sessions_new
    (token_hash, user_id, created_at, expires_at, public_id, client_addr, user_agent)
SELECT token_hash, user_id, created_at, expires_at, public_id, client_addr, user_agent
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE UNIQUE INDEX sessions_by_public_id ON sessions(public_id);

-- audit_events loses AUTOINCREMENT, which made every insert read and
-- rewrite its row of sqlite_sequence. Its ids only order events of the
-- same second; a reused id (possible only after the newest rows are
-- deleted) would be harmless. users keeps AUTOINCREMENT: audit rows name
-- user ids, which must never be given to a new account.
CREATE TABLE audit_events_new (
    id           INTEGER PRIMARY KEY,
    at           BIGINT  NOT NULL,
    username     TEXT,                       -- case-folded; set for unknown names too
    user_id      BIGINT,                     -- NULL when no such account
    event        TEXT    NOT NULL,
    detail       TEXT,
    client_addr  TEXT,
    user_agent   TEXT
);
INSERT INTO audit_events_new (id, at, username, user_id, event, detail, client_addr, user_agent)
SELECT id, at, username, user_id, event, detail, client_addr, user_agent FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_by_name ON audit_events(username, at);
CREATE INDEX audit_events_by_time ON audit_events(at);
