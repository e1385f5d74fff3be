-- A challenge keeps the case-folded username it was issued for, so
-- /login-2fa checks it without reading the users table. Usernames never
-- change. (The SQLite migration of this name also changes table layouts
-- that PostgreSQL does not have: rowid tables and AUTOINCREMENT.)
ALTER TABLE mfa_challenges ADD COLUMN username_key TEXT;
UPDATE mfa_challenges c SET username_key = u.username_key FROM users u WHERE u.id = c.user_id;
ALTER TABLE mfa_challenges ALTER COLUMN username_key SET NOT NULL;
