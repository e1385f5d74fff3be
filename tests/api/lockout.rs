use reqwest::StatusCode;

use super::helpers::{
    Enrollment, PASSWORD, TestApp, assert_error, assert_locked, spawn_app, spawn_app_with,
    wrong_code,
};

/// `n` wrong codes on /login-2fa, each answered 401 invalid_otp.
async fn fail_codes(app: &TestApp, e: &Enrollment, mfa: &str, n: usize) {
    for i in 0..n {
        let resp = app
            .login_2fa("alice", &wrong_code(app, &e.secret), mfa)
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "failure #{}",
            i + 1
        );
        assert_error(resp, 401, "invalid_otp").await;
    }
}

async fn fail_passwords(app: &TestApp, user: &str, n: usize) {
    for i in 0..n {
        let resp = app.login(user, "wrong password").await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "failure #{}",
            i + 1
        );
        assert_error(resp, 401, "invalid_credentials").await;
    }
}

async fn mfa_user(app: &TestApp) -> (Enrollment, String) {
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    (e, mfa)
}

#[tokio::test]
async fn five_wrong_codes_lock_the_second_factor_even_for_the_right_code() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_locked(resp, 30).await;
    // A fresh mfa_token does not help.
    let mfa2 = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_now(&e.secret), &mfa2)
        .await;
    assert_locked(resp, 30).await;
    // Nor a recovery code.
    let resp = app.login_2fa("alice", &e.recovery_codes[0], &mfa2).await;
    assert_locked(resp, 30).await;
}

#[tokio::test]
async fn the_lockout_expires_and_a_right_code_then_works_and_resets_the_count() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    app.advance(31);
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Reset: it takes five fresh failures to lock again, and for 30 s.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    fail_codes(&app, &e, &mfa, 5).await;
    let resp = app
        .login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
        .await;
    assert_locked(resp, 30).await;
}

#[tokio::test]
async fn attempts_refused_while_locked_are_not_counted() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    for _ in 0..3 {
        let resp = app
            .login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
            .await;
        assert_locked(resp, 30).await;
    }
    app.advance(31);
    // The sixth counted failure: locked for 60 s, not 30 * 2^4.
    fail_codes(&app, &e, &mfa, 1).await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_locked(resp, 60).await;
}

#[tokio::test]
async fn each_failure_after_the_lockout_expires_doubles_the_delay() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    app.advance(31);
    fail_codes(&app, &e, &mfa, 1).await;
    assert_locked(app.login_2fa("alice", "000000", &mfa).await, 60).await;
    app.advance(61);
    fail_codes(&app, &e, &mfa, 1).await;
    assert_locked(app.login_2fa("alice", "000000", &mfa).await, 120).await;
    // Still locked just before the end, free just after.
    app.advance(110);
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        429
    );
    app.advance(11);
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_lockout_delay_is_capped_by_lockout_max_delay() {
    let Some(app) = spawn_app_with(&["--lockout-max-delay", "100"]).await else {
        return;
    };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    app.advance(31);
    fail_codes(&app, &e, &mfa, 1).await;
    assert_locked(app.login_2fa("alice", "000000", &mfa).await, 60).await;
    app.advance(61);
    fail_codes(&app, &e, &mfa, 1).await;
    // 120 s capped at 100 s.
    assert_locked(app.login_2fa("alice", "000000", &mfa).await, 100).await;
}

#[tokio::test]
async fn threshold_and_base_delay_are_configurable() {
    let Some(app) =
        spawn_app_with(&["--lockout-threshold", "3", "--lockout-base-delay", "10"]).await
    else {
        return;
    };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 3).await;
    assert_locked(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await,
        10,
    )
    .await;
    app.advance(11);
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn failures_on_login_2fa_and_disable_mfa_add_up() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 3).await;
    for _ in 0..2 {
        let resp = app
            .disable_mfa("alice", PASSWORD, &wrong_code(&app, &e.secret))
            .await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    assert_locked(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await,
        30,
    )
    .await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_locked(resp, 30).await;
}

#[tokio::test]
async fn disable_mfa_failures_alone_lock_the_second_factor() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    for _ in 0..5 {
        let resp = app
            .disable_mfa("alice", PASSWORD, &wrong_code(&app, &e.secret))
            .await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    assert_locked(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await,
        30,
    )
    .await;
}

#[tokio::test]
async fn wrong_codes_do_not_lock_the_password() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    for _ in 0..3 {
        let resp = app.login("alice", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(
        app.qrcode("alice", PASSWORD, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_passwords_do_not_lock_the_second_factor() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_passwords(&app, "alice", 5).await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_correct_password_does_not_reset_the_second_factor_count() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 4).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    fail_codes(&app, &e, &mfa, 1).await;
    assert_locked(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await,
        30,
    )
    .await;
}

#[tokio::test]
async fn five_wrong_passwords_lock_login_even_for_the_right_password() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    fail_passwords(&app, "alice", 5).await;
    assert_locked(app.login("alice", PASSWORD).await, 30).await;
    assert_locked(app.login("ALICE", PASSWORD).await, 30).await;
    // Every endpoint that takes a password.
    assert_locked(app.qrcode("alice", PASSWORD, None).await, 30).await;
    assert_locked(app.enable_mfa("alice", PASSWORD).await, 30).await;
    assert_locked(app.disable_mfa("alice", PASSWORD, "123456").await, 30).await;
    app.advance(31);
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_correct_password_resets_the_password_count() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    fail_passwords(&app, "alice", 4).await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    fail_passwords(&app, "alice", 4).await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn password_failures_on_any_endpoint_share_one_counter() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    assert_eq!(app.login("alice", "wrong password").await.status(), 401);
    assert_eq!(
        app.qrcode("alice", "wrong password", None).await.status(),
        401
    );
    assert_eq!(
        app.enable_mfa("alice", "wrong password").await.status(),
        401
    );
    assert_eq!(
        app.disable_mfa("alice", "wrong password", "123456")
            .await
            .status(),
        401
    );
    assert_eq!(app.login("alice", "wrong password").await.status(), 401);
    assert_locked(app.login("alice", PASSWORD).await, 30).await;
}

#[tokio::test]
async fn password_lockout_doubles_after_expiry() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    fail_passwords(&app, "alice", 5).await;
    app.advance(31);
    fail_passwords(&app, "alice", 1).await;
    assert_locked(app.login("alice", PASSWORD).await, 60).await;
}

#[tokio::test]
async fn an_unknown_username_is_locked_out_like_a_real_one() {
    let Some(app) = spawn_app().await else { return };
    fail_passwords(&app, "ghost", 5).await;
    assert_locked(app.login("ghost", "any password").await, 30).await;
}

#[tokio::test]
async fn password_failures_count_per_case_folded_username() {
    let Some(app) = spawn_app().await else { return };
    for name in ["Ghost", "GHOST", "ghost", "gHoSt", "GhOsT"] {
        let resp = app.login(name, "wrong password").await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    assert_locked(app.login("ghost", "wrong password").await, 30).await;
}

#[tokio::test]
async fn one_accounts_lockout_does_not_affect_another() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.signup_plain("bob", PASSWORD).await;
    fail_passwords(&app, "alice", 5).await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), 429);
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_mfa_tokens_are_not_counted_as_failures() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    for _ in 0..8 {
        let resp = app
            .login_2fa("alice", &wrong_code(&app, &e.secret), &"A".repeat(43))
            .await;
        assert_error(resp, 401, "invalid_mfa_token").await;
    }
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_mfa_token_is_checked_before_the_lockout() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    let resp = app
        .login_2fa("alice", &app.code_now(&e.secret), &"A".repeat(43))
        .await;
    assert_error(resp, 401, "invalid_mfa_token").await;
}

#[tokio::test]
async fn disable_mfa_checks_the_password_before_the_second_factor_lockout() {
    let Some(app) = spawn_app().await else { return };
    let (e, mfa) = mfa_user(&app).await;
    fail_codes(&app, &e, &mfa, 5).await;
    let resp = app
        .disable_mfa("alice", "wrong password", &app.code_now(&e.secret))
        .await;
    assert_error(resp, 401, "invalid_credentials").await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_locked(resp, 30).await;
}
