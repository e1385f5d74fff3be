-- /login-2fa's accepted TOTP codes written in batches on PostgreSQL
-- (src/db/login_write.rs): the logins waiting together go in one statement,
-- one transaction and one commit, a row of VALUES each, as the SQLite
-- writer shares one commit among the transactions queued behind it.
-- Each row calls this, which runs login_2fa_totp (migration 0008) in a
-- subtransaction of its own: where that raises TF001 (the general path
-- would roll back or count a failure) only this login's writes are undone,
-- 0 is returned, and its caller runs the general path; 1 means written.
CREATE FUNCTION login_2fa_totp_try(
    p_credential_id BIGINT, p_step BIGINT, p_drift_steps BIGINT, p_confirm BIGINT,
    p_now BIGINT, p_subject TEXT, p_user_id BIGINT,
    p_challenge BYTEA, p_challenge_legacy BYTEA,
    p_session BYTEA, p_public_id TEXT, p_created_at BIGINT, p_expires_at BIGINT,
    p_client_addr TEXT, p_user_agent TEXT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM login_2fa_totp(
        p_credential_id, p_step, p_drift_steps, p_confirm, p_now, p_subject, p_user_id,
        p_challenge, p_challenge_legacy, p_session, p_public_id, p_created_at, p_expires_at,
        p_client_addr, p_user_agent);
    RETURN 1;
EXCEPTION WHEN SQLSTATE 'TF001' THEN
    RETURN 0;
END $$;
