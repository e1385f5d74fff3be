use reqwest::StatusCode;
use serde_json::json;

use super::helpers::{
    PASSWORD, assert_error, assert_error_detail, assert_ok_json, spawn_app, wrong_code,
};

#[tokio::test]
async fn disable_mfa_with_password_and_code_turns_mfa_off() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    let body = assert_ok_json(resp).await;
    assert_eq!(body["message"], "MFA disabled successfully");
    // Login now hands out a session directly.
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["message"], "Login successful");
    assert!(body.get("mfa_token").is_none(), "{body}");
    let me = assert_ok_json(app.me(body["token"].as_str().unwrap()).await).await;
    assert_eq!(me["mfa_enabled"], false);
}

#[tokio::test]
async fn disable_mfa_works_after_the_enrollment_was_confirmed() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let resp = app
        .disable_mfa("ALICE", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_disabled").await;
}

#[tokio::test]
async fn disable_mfa_accepts_a_code_with_spaces() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let code = app.code_now(&e.secret);
    let resp = app
        .disable_mfa("alice", PASSWORD, &format!("{} {}", &code[..3], &code[3..]))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn after_disabling_the_old_secret_and_recovery_codes_work_nowhere() {
    let Some(app) = spawn_app().await else { return };
    let old = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&old.secret))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Still off: the old factor cannot "disable" again.
    app.advance(30);
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&old.secret))
        .await;
    assert_error(resp, 409, "mfa_disabled").await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &old.recovery_codes[0])
        .await;
    assert_error(resp, 409, "mfa_disabled").await;
    // Re-enrolled: only the new factor counts.
    let resp = app.enable_mfa("alice", PASSWORD).await;
    let new = super::helpers::enrollment_from(&assert_ok_json(resp).await);
    assert_ne!(new.secret, old.secret);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    app.advance(30);
    let old_code = app.code_now(&old.secret);
    if old_code != app.code_now(&new.secret) {
        let resp = app.login_2fa("alice", &old_code, &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    // Five failures in all: at, not over, the lockout threshold.
    for rc in &old.recovery_codes[1..3] {
        let resp = app.login_2fa("alice", rc, &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
        let resp = app.disable_mfa("alice", PASSWORD, rc).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
}

#[tokio::test]
async fn disable_mfa_with_a_wrong_password_is_401_invalid_credentials() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .disable_mfa("alice", "wrong password", &app.code_now(&e.secret))
        .await;
    assert_error_detail(resp, 401, "invalid_credentials", "Invalid credentials").await;
    // The code was not consumed by the refused request.
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn disable_mfa_for_an_unknown_user_is_identical_to_a_wrong_password() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let code = app.code_now(&e.secret);
    let a = app.disable_mfa("alice", "wrong password", &code).await;
    let b = app.disable_mfa("nobody", PASSWORD, &code).await;
    assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(a.status(), b.status());
    assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
}

#[tokio::test]
async fn disable_mfa_when_mfa_is_off_is_409_mfa_disabled() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.disable_mfa("alice", PASSWORD, "123456").await;
    assert_error_detail(resp, 409, "mfa_disabled", "MFA is already disabled").await;
}

#[tokio::test]
async fn disable_mfa_when_mfa_is_off_and_password_wrong_is_401() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.disable_mfa("alice", "wrong password", "123456").await;
    assert_error(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn disable_mfa_with_a_wrong_code_is_401_invalid_otp_for_disabling() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &wrong_code(&app, &e.secret))
        .await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP for disabling MFA").await;
    let resp = app.disable_mfa("alice", PASSWORD, "12").await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP for disabling MFA").await;
    // MFA is still on.
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["mfa_required"], true);
}

#[tokio::test]
async fn disable_mfa_without_a_token_is_422_naming_token() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .post_json(
            "/disable-mfa",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("token"),
        "{body}"
    );
}
