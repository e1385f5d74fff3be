//! Recovery codes after enrollment: the count on /me, a new set for the
//! password and a TOTP code (voiding the old set), and the /login-2fa
//! warning when 2 or fewer are left.

use serde_json::Value;

use super::helpers::{PASSWORD, assert_error, assert_ok_json, spawn_app, wrong_code};

#[tokio::test]
async fn me_shows_how_many_recovery_codes_are_left() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["recovery_codes_remaining"], 10);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_ok_json(app.login_2fa("alice", &e.recovery_codes[0], &mfa).await).await;
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["recovery_codes_remaining"], 9);
}

#[tokio::test]
async fn a_new_set_replaces_the_old_one() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let resp = app
        .regenerate_recovery_codes(&bearer, PASSWORD, &app.code_now(&e.secret))
        .await;
    let no_store = resp.headers().get("cache-control").cloned();
    let body = assert_ok_json(resp).await;
    assert_eq!(no_store.unwrap(), "no-store");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| !e.recovery_codes.contains(c)));

    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &e.recovery_codes[1], &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    let body = assert_ok_json(app.login_2fa("alice", &codes[0], &mfa).await).await;
    assert_eq!(body["recovery_codes_remaining"], 9);
    let events = app.event_names(&bearer).await;
    assert!(
        events.iter().any(|e| e == "recovery_codes.regenerated"),
        "{events:?}"
    );
    let sample = r#"twofactor_account_actions_total{action="recovery_codes_regenerated"}"#;
    assert_eq!(app.metric(sample).await, 1);
}

#[tokio::test]
async fn a_new_set_needs_the_password_and_a_current_totp_code() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let code = app.code_now(&e.secret);
    let resp = app
        .regenerate_recovery_codes(&bearer, "not the password", &code)
        .await;
    assert_error(resp, 401, "invalid_credentials").await;
    let resp = app
        .regenerate_recovery_codes(&bearer, PASSWORD, &wrong_code(&app, &e.secret))
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    // A recovery code is not proof of holding a device.
    let resp = app
        .regenerate_recovery_codes(&bearer, PASSWORD, &e.recovery_codes[0])
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    let resp = app
        .regenerate_recovery_codes("no-session", PASSWORD, &code)
        .await;
    assert_error(resp, 401, "unauthorized").await;
    // The old set is untouched.
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["recovery_codes_remaining"], 10);
}

#[tokio::test]
async fn without_mfa_there_are_no_recovery_codes_to_replace() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let resp = app
        .regenerate_recovery_codes(&bearer, PASSWORD, "123456")
        .await;
    assert_error(resp, 409, "mfa_disabled").await;
}

#[tokio::test]
async fn login_2fa_warns_when_two_or_fewer_recovery_codes_are_left() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mut last = Value::Null;
    for (i, code) in e.recovery_codes.iter().take(8).enumerate() {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        last = assert_ok_json(app.login_2fa("alice", code, &mfa).await).await;
        assert_eq!(last["recovery_codes_remaining"], 9 - i as i64);
        assert_eq!(last.get("warning").is_some(), i == 7, "{last}");
    }
    let warning = last["warning"].as_str().unwrap();
    assert!(warning.contains("2 recovery code"), "{warning}");
    assert!(warning.contains("/me/recovery-codes"), "{warning}");
    // A TOTP login warns too.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await).await;
    assert_eq!(body["recovery_codes_remaining"], 2);
    assert!(body["warning"].is_string(), "{body}");
}
