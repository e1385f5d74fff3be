-- Nothing on SQLite: PostgreSQL's migration of this name leaves room on the
-- pages of totp_credentials (SQLite has no fillfactor), drops the foreign
-- key from sessions to users, whose check locked the user's row there (on
-- SQLite the check is an index lookup that writes nothing), and drops the
-- one-call login function of its migration 0008, which SQLite never had.
-- (The two directories keep the same names.)
SELECT 1;
