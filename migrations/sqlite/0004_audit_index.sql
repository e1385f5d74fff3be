-- "My events" (GET /me/events) reads through audit_events_by_name, filtered
-- on user_id: an account's events all carry its case-folded username. The
-- index on (user_id, at) cost every audited request one more randomly
-- placed page write (about a sixth of a /login-2fa's), for no query.
DROP INDEX audit_events_by_user;
