use reqwest::StatusCode;

use super::helpers::{
    PASSWORD, assert_error_detail, assert_json_content_type, assert_ok_json, assert_token_shape,
    spawn_app,
};

#[tokio::test]
async fn login_without_mfa_returns_a_bearer_session_token_that_works_on_me() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 43200);
    assert!(body.get("mfa_token").is_none(), "{body}");
    let token = body["token"].as_str().unwrap();
    assert_token_shape(token);
    let me = assert_ok_json(app.me(token).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["mfa_enabled"], false);
}

#[tokio::test]
async fn login_with_mfa_returns_an_mfa_token_and_no_session_token() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["message"], "MFA enabled. Please submit OTP");
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["expires_in"], 300);
    assert!(
        body.get("token").is_none(),
        "a session token before the second factor: {body}"
    );
    let mfa_token = body["mfa_token"].as_str().unwrap();
    assert_token_shape(mfa_token);
    // The challenge is not a session.
    let resp = app.me(mfa_token).await;
    assert_error_detail(resp, 401, "unauthorized", "Not authenticated").await;
}

#[tokio::test]
async fn each_login_gets_a_fresh_token() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.signup_mfa("bob", PASSWORD).await;
    let a = app.plain_login("alice", PASSWORD).await;
    let b = app.plain_login("alice", PASSWORD).await;
    assert_ne!(a, b);
    // Both sessions are live.
    assert_eq!(app.me(&a).await.status(), StatusCode::OK);
    assert_eq!(app.me(&b).await.status(), StatusCode::OK);
    let m1 = app.mfa_token("bob", PASSWORD).await;
    let m2 = app.mfa_token("bob", PASSWORD).await;
    assert_ne!(m1, m2);
}

#[tokio::test]
async fn login_with_a_wrong_password_returns_401_invalid_credentials() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.login("alice", "not the password").await;
    assert_error_detail(resp, 401, "invalid_credentials", "Invalid credentials").await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_give_byte_identical_responses() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.signup_mfa("bob", PASSWORD).await;
    let mut seen = Vec::new();
    for (user, pw) in [
        ("alice", "wrong password"),
        ("bob", "wrong password"),
        ("nobody", "wrong password"),
        ("nobody", PASSWORD),
    ] {
        let resp = app.login(user, pw).await;
        let status = resp.status();
        assert_json_content_type(&resp);
        let ct = resp.headers()[reqwest::header::CONTENT_TYPE].clone();
        let bytes = resp.bytes().await.unwrap();
        seen.push((user, status, ct, bytes));
    }
    let (_, s0, c0, b0) = &seen[0];
    assert_eq!(*s0, StatusCode::UNAUTHORIZED);
    for (user, s, c, b) in &seen[1..] {
        assert_eq!(s, s0, "{user}");
        assert_eq!(c, c0, "{user}");
        assert_eq!(
            b,
            b0,
            "{user}: {:?} vs {:?}",
            String::from_utf8_lossy(b),
            String::from_utf8_lossy(b0)
        );
    }
}

#[tokio::test]
async fn login_matches_the_username_ignoring_ascii_case() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("Alice", PASSWORD).await;
    for name in ["alice", "ALICE", "Alice"] {
        let token = app.plain_login(name, PASSWORD).await;
        let me = assert_ok_json(app.me(&token).await).await;
        assert_eq!(me["username"], "Alice", "the name as registered");
    }
}

#[tokio::test]
async fn login_of_a_user_with_unconfirmed_mfa_still_requires_the_second_factor() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    // Never confirmed (no code accepted yet): still a challenge.
    let body = assert_ok_json(app.login("alice", PASSWORD).await).await;
    assert_eq!(body["mfa_required"], true);
    assert!(body.get("token").is_none());
    let token = app.full_login("alice", PASSWORD, &e.secret).await;
    let me = assert_ok_json(app.me(&token).await).await;
    assert_eq!(me["mfa_enabled"], true);
}

#[tokio::test]
async fn login_passwords_are_case_sensitive() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", "Secret-Password").await;
    let resp = app.login("alice", "secret-password").await;
    assert_error_detail(resp, 401, "invalid_credentials", "Invalid credentials").await;
}

#[tokio::test]
async fn login_with_an_impossible_username_is_401_not_a_leak() {
    let Some(app) = spawn_app().await else { return };
    // Not a valid username at signup, but at login it reads as "no such user"
    // (or as invalid input) — never as a 5xx.
    let resp = app.login("no such user", PASSWORD).await;
    let status = resp.status().as_u16();
    assert!(status == 401 || status == 422, "status {status}");
}
