//! Clock drift: each device's observed offset (in time steps) is remembered
//! and the window widened towards it, within --totp-max-drift; a login whose
//! code came from another step than now reports `clock_drift_seconds`.

use super::helpers::{PASSWORD, assert_error, assert_ok_json, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_code_from_the_current_step_reports_no_drift_and_a_fast_phone_reports_30_seconds() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await).await;
    assert!(body.get("clock_drift_seconds").is_none(), "{body}");

    app.advance(30);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let fast = app.code_at_step_offset(&e.secret, 1);
    let body = assert_ok_json(app.login_2fa("alice", &fast, &mfa).await).await;
    assert_eq!(body["clock_drift_seconds"], 30, "{body}");
    let list = assert_ok_json(app.devices(body["token"].as_str().unwrap()).await).await;
    assert_eq!(list["devices"][0]["clock_drift_seconds"], 30);
}

#[tokio::test]
async fn a_slow_phone_reports_negative_drift() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let slow = app.code_at_step_offset(&e.secret, -1);
    let body = assert_ok_json(app.login_2fa("alice", &slow, &mfa).await).await;
    assert_eq!(body["clock_drift_seconds"], -30, "{body}");
}

#[tokio::test]
async fn the_window_follows_a_drifting_phone_up_to_the_bound() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    // Without known drift, two steps ahead is outside the window (skew 1).
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 2), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    // One step ahead is inside; the device's drift becomes +1.
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 1), &mfa)
        .await;
    assert_ok_json(resp).await;
    // Now two steps ahead is accepted (drift becomes +2, the default bound)…
    app.advance(60);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(
        app.login_2fa("alice", &app.code_at_step_offset(&e.secret, 2), &mfa)
            .await,
    )
    .await;
    assert_eq!(body["clock_drift_seconds"], 60);
    // …and three ahead, but the window stops there: four is refused.
    app.advance(60);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 4), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    let body = assert_ok_json(
        app.login_2fa("alice", &app.code_at_step_offset(&e.secret, 3), &mfa)
            .await,
    )
    .await;
    assert_eq!(body["clock_drift_seconds"], 90);
    // A phone whose clock was corrected still works: the true time stays in the window.
    app.advance(120);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await).await;
    assert!(body.get("clock_drift_seconds").is_none(), "{body}");
}

#[tokio::test]
async fn max_drift_zero_keeps_the_window_centred() {
    let Some(app) = spawn_app_with(&["--totp-max-drift", "0"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(
        app.login_2fa("alice", &app.code_at_step_offset(&e.secret, 1), &mfa)
            .await,
    )
    .await;
    // Still reported, but not remembered.
    assert_eq!(body["clock_drift_seconds"], 30);
    app.advance(60);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 2), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
}

#[tokio::test]
async fn observed_drift_is_counted_in_the_metrics() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_at_step_offset(&e.secret, 1), &mfa)
        .await;
    assert_ok_json(resp).await;
    let sample = r#"twofactor_account_actions_total{action="drift_observed"}"#;
    assert_eq!(app.metric(sample).await, 1);
}
