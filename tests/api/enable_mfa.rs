use std::collections::HashSet;

use reqwest::StatusCode;

use super::helpers::{
    PASSWORD, assert_error, assert_error_detail, assert_ok_json, assert_recovery_code_shape,
    enrollment_from, query_param, spawn_app,
};

#[tokio::test]
async fn enable_mfa_for_a_user_without_mfa_returns_a_new_enrollment() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let body = assert_ok_json(app.enable_mfa("alice", PASSWORD).await).await;
    assert_eq!(body["message"], "MFA enabled");
    assert_eq!(body["mfa_enabled"], true);
    let e = enrollment_from(&body);
    assert_eq!(e.secret.len(), 20);
    assert_eq!(
        query_param(&e.provisioning_uri, "issuer").as_deref(),
        Some("twofactor")
    );
    assert_eq!(e.recovery_codes.len(), 10);
    assert_eq!(e.recovery_codes.iter().collect::<HashSet<_>>().len(), 10);
    for c in &e.recovery_codes {
        assert_recovery_code_shape(c);
    }
}

#[tokio::test]
async fn after_enable_mfa_login_requires_the_second_factor() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let e = enrollment_from(&assert_ok_json(app.enable_mfa("ALICE", PASSWORD).await).await);
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["mfa_required"], true);
    assert!(body.get("token").is_none(), "{body}");
    let token = app.full_login("alice", PASSWORD, &e.secret).await;
    let me = assert_ok_json(app.me(&token).await).await;
    assert_eq!(me["mfa_enabled"], true);
}

#[tokio::test]
async fn the_new_enrollment_is_unconfirmed_so_its_qrcode_can_be_fetched() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    assert_eq!(
        app.enable_mfa("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn enable_mfa_when_already_enabled_is_409_mfa_already_enabled() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    // Unconfirmed enrollment.
    let resp = app.enable_mfa("alice", PASSWORD).await;
    assert_error_detail(resp, 409, "mfa_already_enabled", "MFA is already enabled").await;
    // Confirmed enrollment.
    app.full_login("alice", PASSWORD, &e.secret).await;
    let resp = app.enable_mfa("alice", PASSWORD).await;
    assert_error_detail(resp, 409, "mfa_already_enabled", "MFA is already enabled").await;
    // The original secret is untouched.
    app.advance(30);
    app.full_login("alice", PASSWORD, &e.secret).await;
}

#[tokio::test]
async fn enable_mfa_with_a_wrong_password_is_401_invalid_credentials() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.enable_mfa("alice", "wrong password").await;
    assert_error_detail(resp, 401, "invalid_credentials", "Invalid credentials").await;
    // Still off.
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert!(body.get("token").is_some(), "{body}");
}

#[tokio::test]
async fn enable_mfa_for_an_unknown_user_is_identical_to_a_wrong_password() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let a = app.enable_mfa("alice", "wrong password").await;
    let b = app.enable_mfa("nobody", PASSWORD).await;
    assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
}

#[tokio::test]
async fn enable_mfa_with_a_wrong_password_for_an_mfa_user_is_401_not_409() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    // Without the password nobody learns the account's MFA state.
    let resp = app.enable_mfa("alice", "wrong password").await;
    assert_error(resp, 401, "invalid_credentials").await;
}
