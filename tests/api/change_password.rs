//! POST /change-password: the current password (and a code with MFA on),
//! a new password that is not easy to guess, every other session ended.

use reqwest::StatusCode;

use super::helpers::{PASSWORD, assert_error, assert_ok_json, spawn_app, wrong_code};

const NEW: &str = "velvet cactus orbit lantern";

#[tokio::test]
async fn a_new_password_works_the_old_one_does_not_and_other_sessions_end() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let other = app.plain_login("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let resp = app.change_password(&bearer, PASSWORD, NEW, None).await;
    let body = assert_ok_json(resp).await;
    assert_eq!(body["message"], "Password changed");
    assert_eq!(body["sessions_ended"], 1);
    assert_error(app.me(&other).await, 401, "unauthorized").await;
    assert_ok_json(app.me(&bearer).await).await;
    assert_error(
        app.login("alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    app.plain_login("alice", NEW).await;
    let events = app.event_names(&bearer).await;
    assert!(events.iter().any(|e| e == "password.changed"), "{events:?}");
    let sample = r#"twofactor_account_actions_total{action="password_changed"}"#;
    assert_eq!(app.metric(sample).await, 1);
}

#[tokio::test]
async fn weak_new_passwords_are_422_weak_password_with_a_reason() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice.smith", PASSWORD).await;
    let bearer = app.plain_login("alice.smith", PASSWORD).await;
    for weak in [
        "password123",
        "qwertyuiop",
        "aaaaaaaaaaaa",
        "alice.smith1",
        "12345678",
    ] {
        let resp = app.change_password(&bearer, PASSWORD, weak, None).await;
        let body = assert_error(resp, 422, "weak_password").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("Password is too weak"), "{detail}");
        assert!(!detail.contains(weak), "the detail repeats the password");
    }
    let resp = app.change_password(&bearer, PASSWORD, PASSWORD, None).await;
    assert_error(resp, 422, "invalid_input").await;
    let resp = app.change_password(&bearer, PASSWORD, "short", None).await;
    assert_error(resp, 422, "invalid_input").await;
    // Nothing changed.
    app.plain_login("alice.smith", PASSWORD).await;
    let sample = r#"twofactor_account_actions_total{action="weak_password_refused"}"#;
    assert_eq!(app.metric(sample).await, 5);
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_counts_toward_the_lockout() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    for _ in 0..5 {
        let resp = app
            .change_password(&bearer, "not the password", NEW, None)
            .await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    let resp = app.change_password(&bearer, PASSWORD, NEW, None).await;
    assert_error(resp, 429, "too_many_attempts").await;
}

#[tokio::test]
async fn with_mfa_on_a_current_code_is_required() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let resp = app.change_password(&bearer, PASSWORD, NEW, None).await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(body["detail"].as_str().unwrap().starts_with("token"));
    let resp = app
        .change_password(&bearer, PASSWORD, NEW, Some(&wrong_code(&app, &e.secret)))
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    let code = app.code_now(&e.secret);
    let resp = app
        .change_password(&bearer, PASSWORD, NEW, Some(&code))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The code is spent.
    let mfa = app.mfa_token("alice", NEW).await;
    assert_error(
        app.login_2fa("alice", &code, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
}

#[tokio::test]
async fn a_recovery_code_also_proves_the_second_factor() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let resp = app
        .change_password(&bearer, PASSWORD, NEW, Some(&e.recovery_codes[0]))
        .await;
    assert_ok_json(resp).await;
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["recovery_codes_remaining"], 9);
}
