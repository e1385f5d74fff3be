-- Changes to what a /login-2fa writes on PostgreSQL, and how (BENCHMARKS.md,
-- session 18). SQLite's migration of this name does nothing.
--
-- 1. Every login rewrites its device's row (the replay mark, the drift, the
--    time of use). With the table's pages full, PostgreSQL put a quarter of
--    those new versions on another page, which adds an entry to each of the
--    table's four indexes and a lock record to the WAL. With room left on
--    the page, the new version stays there and no index changes (a "HOT"
--    update): 95% of them instead of 75%. Pages written from now on keep a
--    fifth free; pages already full gain room as their rows move.
ALTER TABLE totp_credentials SET (fillfactor = 80);

-- 2. The foreign key from sessions to users made each new session lock its
--    user's row (FOR KEY SHARE): a WAL record, and on the first login after
--    a checkpoint a full image of the users' page, to check what the login
--    has just checked (a second-factor login spends a live challenge, which
--    keeps its own foreign key to the user; a password login has just read
--    the user). What the key guaranteed is kept otherwise:
--    * a session of a deleted account is worthless: every session lookup
--      joins users (`db::sessions`, `db::session_reads`);
--    * deleting an account deletes its sessions explicitly, last, after the
--      rows a second-factor login in flight holds (`db::admin::delete_user`);
--    * the clean-up of expired sessions removes any left by a password
--      login that raced the deletion of its account.
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;

-- 3. Migration 0008's function, which wrote one login per call, has had no
--    caller since the batched write (`db::login_write`, session 17); the
--    release before this one no longer calls it either.
DROP FUNCTION login_2fa_totp(BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, TEXT, BIGINT,
    BYTEA, BYTEA, BYTEA, TEXT, BIGINT, BIGINT, TEXT, TEXT);
