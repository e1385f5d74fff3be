-- The audit trail: one row per security event. Rows outlive the account
-- (no foreign key) and never hold a secret, code or token.
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT  NOT NULL,
    username     TEXT,                       -- case-folded; set for unknown names too
    user_id      BIGINT,                     -- NULL when no such account
    event        TEXT    NOT NULL,
    detail       TEXT,
    client_addr  TEXT,
    user_agent   TEXT
);
CREATE INDEX audit_events_by_user ON audit_events(user_id, at);
CREATE INDEX audit_events_by_name ON audit_events(username, at);
CREATE INDEX audit_events_by_time ON audit_events(at);
