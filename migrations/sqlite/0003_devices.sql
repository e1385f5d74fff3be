-- Several named TOTP devices per account, and sessions a user can list.
--
-- totp_credentials loses its one-per-user UNIQUE (SQLite can't drop a
-- constraint, so the table is rebuilt) and gains: a label; is_default (the
-- seed's enrollment from /signup and /enable-mfa, at most one per user);
-- pending_expires_at (a device added by POST /me/devices stays pending until
-- its first code, and is ignored once this time has passed); last_used_at;
-- drift_steps (the phone's observed clock offset in time steps).
CREATE TABLE totp_devices (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label              TEXT    NOT NULL,
    is_default         BIGINT  NOT NULL DEFAULT 0,
    secret_nonce       BLOB    NOT NULL,
    secret_sealed      BLOB    NOT NULL,
    algorithm          TEXT    NOT NULL,
    digits             BIGINT  NOT NULL,
    period             BIGINT  NOT NULL,
    last_step          BIGINT,
    confirmed_at       BIGINT,
    created_at         BIGINT  NOT NULL,
    pending_expires_at BIGINT,
    last_used_at       BIGINT,
    drift_steps        BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO totp_devices
    (id, user_id, label, is_default, secret_nonce, secret_sealed, algorithm, digits, period,
     last_step, confirmed_at, created_at)
SELECT id, user_id, 'default', 1, secret_nonce, secret_sealed, algorithm, digits, period,
       last_step, confirmed_at, created_at
FROM totp_credentials;
DROP TABLE totp_credentials;
ALTER TABLE totp_devices RENAME TO totp_credentials;
CREATE INDEX totp_credentials_by_user ON totp_credentials(user_id);
CREATE UNIQUE INDEX totp_credentials_one_default ON totp_credentials(user_id) WHERE is_default = 1;
CREATE UNIQUE INDEX totp_credentials_label ON totp_credentials(user_id, label);

-- Sessions get an opaque public id (never the token or its hash) and where
-- they were opened from.
ALTER TABLE sessions ADD COLUMN public_id TEXT;
ALTER TABLE sessions ADD COLUMN client_addr TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
UPDATE sessions SET public_id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX sessions_by_public_id ON sessions(public_id);
