-- Nothing on SQLite: PostgreSQL's migration of this name adds a function
-- that makes /login-2fa's write one round trip; SQLite runs in the process
-- and makes no round trips. (The two directories keep the same names.)
SELECT 1;
