-- Nothing on SQLite: PostgreSQL's migration of this name adds the function
-- through which /login-2fa's writes are batched, one statement and one
-- commit for the logins waiting together; on SQLite the writer's group
-- commit does that. (The two directories keep the same names.)
SELECT 1;
