use reqwest::StatusCode;

use super::helpers::{
    PASSWORD, TestApp, assert_error_detail, assert_locked, assert_ok_json, spawn_app, wrong_code,
};

async fn assert_unauthorized(resp: reqwest::Response) {
    let www = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_error_detail(resp, 401, "unauthorized", "Not authenticated").await;
    assert!(www.starts_with("Bearer"), "WWW-Authenticate {www:?}");
}

async fn me_with_header(app: &TestApp, value: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/me"));
    if let Some(v) = value {
        req = req.header(reqwest::header::AUTHORIZATION, v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn me_without_an_authorization_header_is_401_unauthorized() {
    let Some(app) = spawn_app().await else { return };
    assert_unauthorized(me_with_header(&app, None).await).await;
}

#[tokio::test]
async fn me_with_a_garbage_or_wrong_scheme_token_is_401_unauthorized() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    for value in [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer garbage".to_string(),
        format!("Bearer {}", "A".repeat(43)),
        format!("Basic {token}"),
        format!("Token {token}"),
        token.clone(),
        format!("Bearer {token}x"),
        format!("Bearer {}", &token[..42]),
        "Basic YWxpY2U6cGFzc3dvcmQ=".to_string(),
    ] {
        assert_unauthorized(me_with_header(&app, Some(&value)).await).await;
    }
    // The real token still works.
    assert_eq!(
        me_with_header(&app, Some(&format!("Bearer {token}")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    // RFC 7235 section 2.1: auth schemes are case-insensitive.
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    assert_eq!(
        me_with_header(&app, Some(&format!("bearer {token}")))
            .await
            .status(),
        200
    );
    assert_eq!(
        me_with_header(&app, Some(&format!("BEARER {token}")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn logout_returns_204_and_kills_the_token() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    let other = app.plain_login("alice", PASSWORD).await;
    let resp = app.logout(&token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_unauthorized(app.me(&token).await).await;
    assert_unauthorized(app.logout(&token).await).await;
    // Only that session ended.
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_without_a_token_is_401_unauthorized() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.client.post(app.url("/logout")).send().await.unwrap();
    assert_unauthorized(resp).await;
    assert_unauthorized(app.logout("garbage").await).await;
}

#[tokio::test]
async fn a_session_expires_after_43200_seconds() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    app.advance(43_000);
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    app.advance(201);
    assert_unauthorized(app.me(&token).await).await;
    assert_unauthorized(app.logout(&token).await).await;
}

#[tokio::test]
async fn session_ttl_is_configurable() {
    let Some(app) = super::helpers::spawn_app_with(&["--session-ttl", "600"]).await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["expires_in"], 600);
    let token = body["token"].as_str().unwrap().to_string();
    app.advance(601);
    assert_unauthorized(app.me(&token).await).await;
}

#[tokio::test]
async fn a_2fa_session_is_a_full_session() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let token = app.full_login("alice", PASSWORD, &e.secret).await;
    let me = assert_ok_json(app.me(&token).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(app.logout(&token).await.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&token).await).await;
}

#[tokio::test]
async fn users_and_sessions_survive_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let e = app.signup_mfa("bob", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    let old_address = app.address.clone();
    app.restart().await;
    assert_ne!(app.address, old_address);
    let me = assert_ok_json(app.me(&token).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.signup("ALICE", PASSWORD, false).await.status(), 409);
    // The sealed secret still decrypts under the same key file.
    let token = app.full_login("bob", PASSWORD, &e.secret).await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_logout_survives_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let token = app.plain_login("alice", PASSWORD).await;
    assert_eq!(app.logout(&token).await.status(), StatusCode::NO_CONTENT);
    app.restart().await;
    assert_unauthorized(app.me(&token).await).await;
}

#[tokio::test]
async fn mfa_tokens_survive_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    app.restart().await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn replay_marks_survive_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let code = app.code_now(&e.secret);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &code, &mfa).await.status(),
        StatusCode::OK
    );
    app.restart().await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &code, &mfa).await;
    super::helpers::assert_error(resp, 401, "invalid_otp").await;
}

#[tokio::test]
async fn second_factor_lockout_survives_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    for _ in 0..5 {
        let resp = app
            .login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
            .await;
        assert_eq!(resp.status(), 401);
    }
    app.restart().await;
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_locked(resp, 30).await;
}

#[tokio::test]
async fn password_lockout_survives_a_restart() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(app.login("alice", "wrong password").await.status(), 401);
    }
    app.restart().await;
    assert_locked(app.login("alice", PASSWORD).await, 30).await;
}
