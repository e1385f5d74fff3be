//! Authenticator apps that ignore `algorithm`, `digits` or `period` in the
//! provisioning URI: with non-default TOTP parameters, a first code that is
//! the standard SHA1/6-digit/30 s code is refused with
//! `authenticator_ignored_parameters` instead of enrolling a device whose
//! codes would all fail later.

use twofactor::auth::totp::{self, TotpParams};

use super::helpers::{
    PASSWORD, TestApp, assert_error, assert_ok_json, spawn_app, spawn_app_with, wrong_code,
};

/// The SHA1/6/30 code of `secret` now, as a parameter-ignoring app shows it.
fn standard_code(app: &TestApp, secret: &[u8]) -> String {
    totp::generate(&TotpParams::default(), secret, app.clock.now() as u64)
}

#[tokio::test]
async fn an_eight_digit_enrollment_refuses_a_six_digit_first_login_code_with_a_clear_error() {
    let Some(app) = spawn_app_with(&["--totp-digits", "8"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &standard_code(&app, &e.secret), &mfa)
        .await;
    let body = assert_error(resp, 422, "authenticator_ignored_parameters").await;
    assert!(
        body["detail"].as_str().unwrap().contains("ignored"),
        "{body}"
    );
    // The right code still enrolls.
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_ok_json(resp).await;
}

#[tokio::test]
async fn a_sha256_device_refuses_a_sha1_first_code_and_accepts_its_own() {
    let Some(app) = spawn_app_with(&["--totp-algorithm", "sha256"]).await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let device = app.add_pending_device(&bearer, "phone").await;
    assert_eq!(device.body["algorithm"], "SHA256");
    let resp = app
        .confirm_device(&bearer, device.id, &standard_code(&app, &device.secret))
        .await;
    assert_error(resp, 422, "authenticator_ignored_parameters").await;
    let events = app.event_names(&bearer).await;
    assert!(
        events.iter().any(|e| e == "device.parameters_ignored"),
        "{events:?}"
    );
    let resp = app
        .confirm_device(&bearer, device.id, &app.code_now(&device.secret))
        .await;
    assert_ok_json(resp).await;
    let sample = r#"twofactor_account_actions_total{action="parameters_ignored"}"#;
    assert_eq!(app.metric(sample).await, 1);
}

#[tokio::test]
async fn a_sixty_second_period_refuses_a_thirty_second_code() {
    let Some(app) = spawn_app_with(&["--totp-period", "60"]).await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let device = app.add_pending_device(&bearer, "phone").await;
    let standard = standard_code(&app, &device.secret);
    if standard == app.code_now(&device.secret) {
        return; // a one-in-a-million coincidence of both codes
    }
    let resp = app.confirm_device(&bearer, device.id, &standard).await;
    assert_error(resp, 422, "authenticator_ignored_parameters").await;
}

#[tokio::test]
async fn with_default_parameters_a_wrong_code_is_just_wrong() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let device = app.add_pending_device(&bearer, "phone").await;
    let resp = app
        .confirm_device(&bearer, device.id, &wrong_code(&app, &device.secret))
        .await;
    assert_error(resp, 422, "invalid_code").await;
}
