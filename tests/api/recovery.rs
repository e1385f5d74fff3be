use reqwest::StatusCode;

use super::helpers::{PASSWORD, assert_error, assert_error_detail, assert_ok_json, spawn_app};

#[tokio::test]
async fn a_recovery_code_logs_in_once_and_reports_how_many_remain() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(app.login_2fa("alice", &e.recovery_codes[0], &mfa).await).await;
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["recovery_codes_remaining"], 9);
    let me = assert_ok_json(app.me(body["token"].as_str().unwrap()).await).await;
    assert_eq!(me["username"], "alice");
    // Used up.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &e.recovery_codes[0], &mfa).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
}

#[tokio::test]
async fn recovery_codes_work_in_any_order_and_each_only_once() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let order = [7, 2, 9, 0, 4];
    for (i, &k) in order.iter().enumerate() {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let body = assert_ok_json(app.login_2fa("alice", &e.recovery_codes[k], &mfa).await).await;
        assert_eq!(
            body["recovery_codes_remaining"],
            9 - i as u64,
            "after code #{k}"
        );
    }
    let mfa = app.mfa_token("alice", PASSWORD).await;
    for &k in &order[..3] {
        let resp = app.login_2fa("alice", &e.recovery_codes[k], &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    // The unused ones still work.
    let body = assert_ok_json(app.login_2fa("alice", &e.recovery_codes[5], &mfa).await).await;
    assert_eq!(body["recovery_codes_remaining"], 4);
}

#[tokio::test]
async fn all_ten_recovery_codes_work_then_none_remain() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    for (i, code) in e.recovery_codes.iter().enumerate().rev() {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let body = assert_ok_json(app.login_2fa("alice", code, &mfa).await).await;
        assert_eq!(body["recovery_codes_remaining"], i as u64);
    }
    // The TOTP factor still works.
    app.full_login("alice", PASSWORD, &e.secret).await;
}

#[tokio::test]
async fn recovery_codes_are_accepted_in_upper_case_and_without_dashes() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let variants = [
        e.recovery_codes[0].to_uppercase(),
        e.recovery_codes[1].replace('-', ""),
        e.recovery_codes[2].to_uppercase().replace('-', ""),
    ];
    for v in &variants {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let resp = app.login_2fa("alice", v, &mfa).await;
        assert_eq!(resp.status(), StatusCode::OK, "{v}");
    }
    // A variant of a used code is the used code.
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &e.recovery_codes[0], &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    let resp = app
        .login_2fa("alice", &e.recovery_codes[1].to_uppercase(), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
}

#[tokio::test]
async fn a_recovery_code_does_not_confirm_the_enrollment() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &e.recovery_codes[3], &mfa)
            .await
            .status(),
        200
    );
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_disables_mfa() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let resp = app
        .disable_mfa("alice", PASSWORD, &e.recovery_codes[6])
        .await;
    let body = assert_ok_json(resp).await;
    assert_eq!(body["message"], "MFA disabled successfully");
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert!(body.get("token").is_some(), "{body}");
}

#[tokio::test]
async fn a_recovery_code_used_to_log_in_cannot_disable_mfa() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &e.recovery_codes[1], &mfa)
            .await
            .status(),
        200
    );
    let resp = app
        .disable_mfa("alice", PASSWORD, &e.recovery_codes[1])
        .await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP for disabling MFA").await;
}

#[tokio::test]
async fn another_users_recovery_code_is_refused() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let bob = app.signup_mfa("bob", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &bob.recovery_codes[0], &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    // And bob's code was not spent by the attempt.
    let mfa = app.mfa_token("bob", PASSWORD).await;
    assert_eq!(
        app.login_2fa("bob", &bob.recovery_codes[0], &mfa)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_made_up_recovery_code_is_401_invalid_otp() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", "abcd-efgh-ijkl-mnop", &mfa).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
}

#[tokio::test]
async fn recovery_codes_survive_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &e.recovery_codes[0], &mfa)
            .await
            .status(),
        200
    );
    app.restart().await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &e.recovery_codes[0], &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
    let body = assert_ok_json(app.login_2fa("alice", &e.recovery_codes[1], &mfa).await).await;
    assert_eq!(body["recovery_codes_remaining"], 8);
}
