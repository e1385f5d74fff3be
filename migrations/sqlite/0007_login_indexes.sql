-- Fewer B-trees written per login (BENCHMARKS.md, session 11). A
-- /login-2fa stores a session and spends a challenge; every index of those
-- tables, and of the audit row it adds, is one more B-tree changed inside
-- the write lock and more pages in the commit. Four of them go; what they
-- served is served without them:
--
-- * sessions_by_public_id: a session is ended by its public id only
--   together with its user (sessions_by_user finds the user's few rows);
-- * sessions_by_expiry, mfa_challenges_by_expiry: the clean-up finds
--   expired tokens through the primary key, whose keys begin with the time
--   the token was issued (auth::tokens): the expired ones are the first
--   keys. Tokens of the layout before that (a bare SHA-256, 32 bytes) keep
--   an index of their own, which no new token enters;
-- * audit_events_by_time: ids are given in the order events happen, so
--   "events since" reads the newest ids backwards and stops at its limit.
DROP INDEX sessions_by_public_id;
DROP INDEX sessions_by_expiry;
CREATE INDEX sessions_legacy_by_expiry ON sessions(expires_at) WHERE length(token_hash) = 32;
DROP INDEX mfa_challenges_by_expiry;
CREATE INDEX mfa_challenges_legacy_by_expiry ON mfa_challenges(expires_at) WHERE length(token_hash) = 32;
DROP INDEX audit_events_by_time;
