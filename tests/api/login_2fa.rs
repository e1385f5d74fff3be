use reqwest::StatusCode;
use serde_json::json;

use super::helpers::{
    PASSWORD, assert_error, assert_error_detail, assert_ok_json, assert_token_shape, spawn_app,
    spawn_app_with, wrong_code,
};

#[tokio::test]
async fn login_2fa_with_the_current_code_returns_a_session_that_works_on_me() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    let body = assert_ok_json(resp).await;
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 43200);
    assert!(body.get("recovery_codes_remaining").is_none(), "{body}");
    let token = body["token"].as_str().unwrap();
    assert_token_shape(token);
    assert_ne!(token, mfa);
    let me = assert_ok_json(app.me(token).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["mfa_enabled"], true);
}

#[tokio::test]
async fn login_2fa_username_is_matched_ignoring_case() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("Alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("ALICE", &app.code_now(&e.secret), &mfa).await;
    let body = assert_ok_json(resp).await;
    let me = assert_ok_json(app.me(body["token"].as_str().unwrap()).await).await;
    assert_eq!(me["username"], "Alice");
}

#[tokio::test]
async fn a_wrong_code_is_401_invalid_otp_and_does_not_spend_the_mfa_token() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
        .await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrongly_shaped_codes_are_401_invalid_otp() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let good = app.code_now(&e.secret);
    for bad in [
        &good[..5],
        &format!("{good}0"),
        "abcdef",
        "12345a",
        "-12345",
    ] {
        let resp = app.login_2fa("alice", bad, &mfa).await;
        assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
    }
}

#[tokio::test]
async fn a_missing_mfa_token_is_422_naming_mfa_token() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .post_json(
            "/login-2fa",
            &json!({"username": "alice", "token": app.code_now(&e.secret)}),
        )
        .await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("mfa_token"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_mfa_token_is_401_invalid_mfa_token() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let fake = "A".repeat(43);
    let resp = app
        .login_2fa("alice", &app.code_now(&e.secret), &fake)
        .await;
    assert_error(resp, 401, "invalid_mfa_token").await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), "x").await;
    assert_error(resp, 401, "invalid_mfa_token").await;
}

#[tokio::test]
async fn another_users_mfa_token_is_401_invalid_mfa_token() {
    let Some(app) = spawn_app().await else { return };
    let alice = app.signup_mfa("alice", PASSWORD).await;
    app.signup_mfa("mallory", PASSWORD).await;
    let mallorys = app.mfa_token("mallory", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_now(&alice.secret), &mallorys)
        .await;
    assert_error(resp, 401, "invalid_mfa_token").await;
    // Nor did the attempt use up alice's code.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_now(&alice.secret), &mfa)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_mfa_token_expires_after_300_seconds() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let stale = app.mfa_token("alice", PASSWORD).await;
    app.advance(250);
    let fresh = app.mfa_token("alice", PASSWORD).await;
    app.advance(51);
    let resp = app
        .login_2fa("alice", &app.code_now(&e.secret), &stale)
        .await;
    assert_error(resp, 401, "invalid_mfa_token").await;
    // Token checks come before the code: the code is still unused.
    let resp = app
        .login_2fa("alice", &app.code_now(&e.secret), &fresh)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_mfa_token_is_spent_by_a_success() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        200
    );
    app.advance(30);
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_error(resp, 401, "invalid_mfa_token").await;
    // Even with a recovery code.
    let resp = app.login_2fa("alice", &e.recovery_codes[0], &mfa).await;
    assert_error(resp, 401, "invalid_mfa_token").await;
}

#[tokio::test]
async fn a_code_with_spaces_is_accepted() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let code = app.code_now(&e.secret);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    assert_eq!(
        app.login_2fa("alice", &spaced, &mfa).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn codes_from_the_previous_and_next_step_are_accepted() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    // Previous step first: accepting the next step first would raise the
    // replay floor above it.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let prev = app.code_at_step_offset(&e.secret, -1);
    assert_eq!(
        app.login_2fa("alice", &prev, &mfa).await.status(),
        StatusCode::OK
    );
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let next = app.code_at_step_offset(&e.secret, 1);
    assert_eq!(
        app.login_2fa("alice", &next, &mfa).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn codes_two_steps_away_are_refused() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    for offset in [-2, 2, -3, 3] {
        let code = app.code_at_step_offset(&e.secret, offset);
        if (-1..=1).any(|o| app.code_at_step_offset(&e.secret, o) == code) {
            continue; // a one-in-a-million collision with a valid code
        }
        let resp = app.login_2fa("alice", &code, &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    // Four failures, under the lockout threshold: the right code still works.
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn totp_skew_zero_refuses_the_adjacent_steps() {
    let Some(app) = spawn_app_with(&["--totp-skew", "0"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 1), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, -1), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    assert_eq!(
        app.login_2fa("alice", &app.code_now(&e.secret), &mfa)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn eight_digit_codes_work_when_configured() {
    let Some(app) = spawn_app_with(&["--totp-digits", "8"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let code = app.code_now(&e.secret);
    assert_eq!(code.len(), 8);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    // The six-digit prefix is not a code.
    let resp = app.login_2fa("alice", &code[..6], &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    assert_eq!(app.login_2fa("alice", &code, &mfa).await.status(), 200);
}

#[tokio::test]
async fn sha256_enrollments_use_sha256_codes() {
    let Some(app) = spawn_app_with(&["--totp-algorithm", "sha256"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let alg = super::helpers::query_param(&e.provisioning_uri, "algorithm");
    assert_eq!(alg.as_deref(), Some("SHA256"), "{}", e.provisioning_uri);
    let token = app.full_login("alice", PASSWORD, &e.secret).await;
    assert_eq!(app.me(&token).await.status(), 200);
}

#[tokio::test]
async fn the_first_accepted_code_confirms_the_enrollment() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    assert_eq!(
        app.qrcode("alice", PASSWORD, None).await.status(),
        StatusCode::OK
    );
    // A failed attempt confirms nothing.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    assert_eq!(
        app.qrcode("alice", PASSWORD, None).await.status(),
        StatusCode::OK
    );
    app.full_login("alice", PASSWORD, &e.secret).await;
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_confirmed").await;
}

#[tokio::test]
async fn login_2fa_for_a_user_without_mfa_cannot_succeed() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    // No mfa_token can exist for this user.
    let resp = app.login_2fa("alice", "123456", &"B".repeat(43)).await;
    assert_error(resp, 401, "invalid_mfa_token").await;
}

#[tokio::test]
async fn an_empty_token_is_422_naming_token() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", "", &mfa).await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("token"),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_of_65_characters_is_422_naming_token() {
    // The contract: a non-empty string of at most 64 characters.
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &"1".repeat(65), &mfa).await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("token"),
        "{body}"
    );
    // 64 characters is still a (wrong) code, not invalid input.
    let resp = app.login_2fa("alice", &"1".repeat(64), &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    // Characters, not bytes: 64 two-byte characters are within the bound
    // (found by Schemathesis).
    let resp = app.login_2fa("alice", &"é".repeat(64), &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
}
