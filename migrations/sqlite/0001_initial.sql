-- Accounts, one TOTP credential per user (a table of its own so several
-- devices per user can come later), recovery codes, sessions, MFA
-- challenges and lockout counters. Times are Unix seconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,   -- ASCII-lowercased username
    password_hash TEXT    NOT NULL,          -- argon2id PHC string
    created_at    BIGINT  NOT NULL
);

CREATE TABLE totp_credentials (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT  NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    secret_nonce  BLOB    NOT NULL,          -- XChaCha20-Poly1305 nonce
    secret_sealed BLOB    NOT NULL,          -- sealed secret, AAD = user id
    algorithm     TEXT    NOT NULL,
    digits        BIGINT  NOT NULL,
    period        BIGINT  NOT NULL,
    last_step     BIGINT,                    -- replay floor: highest accepted step
    confirmed_at  BIGINT,                    -- first accepted TOTP code
    created_at    BIGINT  NOT NULL
);

CREATE TABLE recovery_codes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    salt          BLOB    NOT NULL,
    code_hash     BLOB    NOT NULL,
    used_at       BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes(user_id);

CREATE TABLE sessions (
    token_hash    BLOB    PRIMARY KEY,       -- SHA-256 of the bearer token
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE mfa_challenges (
    token_hash    BLOB    PRIMARY KEY,       -- SHA-256 of the mfa_token
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges(expires_at);

-- Keyed by the case-folded username, not the user id, so unknown usernames
-- lock out exactly like real ones.
CREATE TABLE throttles (
    subject       TEXT    NOT NULL,
    factor        TEXT    NOT NULL,          -- 'password' | 'second_factor'
    failures      BIGINT  NOT NULL,
    locked_until  BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (subject, factor)
);
CREATE INDEX throttles_by_update ON throttles(updated_at);
