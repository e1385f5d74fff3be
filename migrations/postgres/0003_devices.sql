-- Several named TOTP devices per account, and sessions a user can list.
--
-- totp_credentials loses its one-per-user UNIQUE and gains: a label;
-- is_default (the seed's enrollment from /signup and /enable-mfa, at most one
-- per user); pending_expires_at (a device added by POST /me/devices stays
-- pending until its first code, and is ignored once this time has passed);
-- last_used_at; drift_steps (the phone's observed clock offset in time steps).
ALTER TABLE totp_credentials DROP CONSTRAINT totp_credentials_user_id_key;
ALTER TABLE totp_credentials
    ADD COLUMN label              TEXT,
    ADD COLUMN is_default         BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN pending_expires_at BIGINT,
    ADD COLUMN last_used_at       BIGINT,
    ADD COLUMN drift_steps        BIGINT NOT NULL DEFAULT 0;
UPDATE totp_credentials SET label = 'default', is_default = 1;
ALTER TABLE totp_credentials ALTER COLUMN label SET NOT NULL;
CREATE INDEX totp_credentials_by_user ON totp_credentials(user_id);
CREATE UNIQUE INDEX totp_credentials_one_default ON totp_credentials(user_id) WHERE is_default = 1;
CREATE UNIQUE INDEX totp_credentials_label ON totp_credentials(user_id, label);

-- Sessions get an opaque public id (never the token or its hash) and where
-- they were opened from.
ALTER TABLE sessions
    ADD COLUMN public_id   TEXT,
    ADD COLUMN client_addr TEXT,
    ADD COLUMN user_agent  TEXT;
UPDATE sessions SET public_id = md5(random()::text || encode(token_hash, 'hex'));
CREATE UNIQUE INDEX sessions_by_public_id ON sessions(public_id);
