-- /login-2fa's write for an accepted TOTP code, in one round trip on
-- PostgreSQL (src/db/login_write.rs). Every statement is a round trip to
-- the server, and this transaction was seven of them (BENCHMARKS.md,
-- session 14). The statements, and their order, are the general path's
-- (service::second_factor::settle_in, then http::login's challenge and
-- session): the device's replay mark first (it holds the device's row),
-- then the counter (its row), the audit rows, the challenge, the session.
-- Wherever the general path would roll back or count a failure, this
-- raises SQLSTATE TF001: the call, its own transaction, is undone, and the
-- caller runs the general path, which gives the exact answer.
CREATE FUNCTION login_2fa_totp(
    p_credential_id BIGINT, p_step BIGINT, p_drift_steps BIGINT, p_confirm BIGINT,
    p_now BIGINT, p_subject TEXT, p_user_id BIGINT,
    p_challenge BYTEA, p_challenge_legacy BYTEA,
    p_session BYTEA, p_public_id TEXT, p_created_at BIGINT, p_expires_at BIGINT,
    p_client_addr TEXT, p_user_agent TEXT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_locked_until BIGINT;
BEGIN
    UPDATE totp_credentials
    SET last_step = p_step, drift_steps = p_drift_steps, last_used_at = p_now,
        confirmed_at = CASE WHEN p_confirm = 1 THEN COALESCE(confirmed_at, p_now) ELSE confirmed_at END
    WHERE id = p_credential_id AND (last_step IS NULL OR last_step < p_step);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'code not consumed' USING ERRCODE = 'TF001';
    END IF;
    UPDATE throttles
    SET failures = CASE WHEN locked_until > p_now THEN failures ELSE 0 END,
        updated_at = CASE WHEN locked_until > p_now THEN updated_at ELSE p_now END
    WHERE subject = p_subject AND factor = 'second_factor'
    RETURNING locked_until INTO v_locked_until;
    IF v_locked_until > p_now THEN
        RAISE EXCEPTION 'locked out' USING ERRCODE = 'TF001';
    END IF;
    INSERT INTO audit_events (at, username, user_id, event, detail, client_addr, user_agent)
    VALUES (p_now, p_subject, p_user_id, 'second_factor.success', 'factor=totp', p_client_addr, p_user_agent);
    IF p_confirm = 1 THEN
        INSERT INTO audit_events (at, username, user_id, event, detail, client_addr, user_agent)
        VALUES (p_now, p_subject, p_user_id, 'mfa.confirmed', NULL, p_client_addr, p_user_agent);
    END IF;
    DELETE FROM mfa_challenges
    WHERE token_hash = p_challenge AND user_id = p_user_id AND expires_at > p_now;
    IF NOT FOUND THEN
        DELETE FROM mfa_challenges
        WHERE token_hash = p_challenge_legacy AND user_id = p_user_id AND expires_at > p_now;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'challenge not spent' USING ERRCODE = 'TF001';
        END IF;
    END IF;
    INSERT INTO sessions (token_hash, public_id, user_id, created_at, expires_at, client_addr, user_agent)
    VALUES (p_session, p_public_id, p_user_id, p_created_at, p_expires_at, p_client_addr, p_user_agent);
    RETURN 1;
END $$;
