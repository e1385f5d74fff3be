//! Several instances on one database share everything: sessions, mfa tokens,
//! replay marks, lockout counters. Two servers (A and B) on the same database,
//! key file, flags and clock, as behind a load balancer with nothing sticky.
//! On SQLite that is two processes' worth of pools on one file, which is
//! legitimate too.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::{
    PASSWORD, TestApp, assert_error, assert_error_detail, assert_locked, assert_ok_json, spawn_app,
    spawn_app_with, wrong_code,
};

#[tokio::test]
async fn a_session_made_on_one_instance_works_on_the_other_and_dies_everywhere_after_logout() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    assert_ne!(a.port, b.port);
    a.signup_plain("alice", PASSWORD).await;
    let token = a.plain_login("alice", PASSWORD).await;
    let me = assert_ok_json(b.me(&token).await).await;
    assert_eq!(me, json!({"username": "alice", "mfa_enabled": false}));
    assert_eq!(a.logout(&token).await.status(), StatusCode::NO_CONTENT);
    assert_error_detail(b.me(&token).await, 401, "unauthorized", "Not authenticated").await;
    assert_error_detail(a.me(&token).await, 401, "unauthorized", "Not authenticated").await;
    assert_error(b.logout(&token).await, 401, "unauthorized").await;
    // And the other way round.
    let token = b.plain_login("alice", PASSWORD).await;
    assert_eq!(a.me(&token).await.status(), StatusCode::OK);
    assert_eq!(b.logout(&token).await.status(), StatusCode::NO_CONTENT);
    assert_error(a.me(&token).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_account_made_on_one_instance_exists_on_the_other() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    a.signup_plain("alice", PASSWORD).await;
    assert_error(b.signup("ALICE", PASSWORD, false).await, 409, "user_exists").await;
    b.plain_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn an_mfa_token_from_one_instance_is_redeemed_once_on_either() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    let e = a.signup_mfa("alice", PASSWORD).await;
    a.align_to_step_start();
    let mfa = a.mfa_token("alice", PASSWORD).await;
    let body = assert_ok_json(b.login_2fa("alice", &a.code_now(&e.secret), &mfa).await).await;
    let session = body["token"].as_str().expect("session token");
    assert_eq!(a.me(session).await.status(), StatusCode::OK);
    // Spent everywhere.
    a.advance(30);
    let resp = a.login_2fa("alice", &a.code_now(&e.secret), &mfa).await;
    assert_error(resp, 401, "invalid_mfa_token").await;
}

#[tokio::test]
async fn a_code_accepted_on_one_instance_is_refused_on_the_other() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    let e = a.signup_mfa("alice", PASSWORD).await;
    a.align_to_step_start();
    let code = a.code_now(&e.secret);
    let earlier = a.code_at_step_offset(&e.secret, -1);
    let mfa_a = a.mfa_token("alice", PASSWORD).await;
    assert_ok_json(a.login_2fa("alice", &code, &mfa_a).await).await;
    // A fresh challenge on B does not make the code (or an earlier one) new.
    let mfa_b = b.mfa_token("alice", PASSWORD).await;
    let resp = b.login_2fa("alice", &code, &mfa_b).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
    let resp = b.login_2fa("alice", &earlier, &mfa_b).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
    // Nor on /disable-mfa.
    let resp = b.disable_mfa("alice", PASSWORD, &code).await;
    assert_error(resp, 401, "invalid_otp").await;
    // A accepted the first code, so the enrollment is confirmed for B too.
    assert_error(
        b.qrcode("alice", PASSWORD, None).await,
        409,
        "mfa_confirmed",
    )
    .await;
    // The refusals did not spend B's challenge: the next step's code works.
    b.advance(30);
    let resp = b.login_2fa("alice", &b.code_now(&e.secret), &mfa_b).await;
    assert_ok_json(resp).await;
}

#[tokio::test]
async fn mfa_disabled_on_one_instance_is_off_on_the_other() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    let e = a.signup_mfa("alice", PASSWORD).await;
    let resp = a
        .disable_mfa("alice", PASSWORD, &a.code_now(&e.secret))
        .await;
    assert_ok_json(resp).await;
    let token = b.plain_login("alice", PASSWORD).await;
    let me = assert_ok_json(b.me(&token).await).await;
    assert_eq!(me["mfa_enabled"], false);
}

#[tokio::test]
async fn password_failures_on_both_instances_add_up_to_one_lockout() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    a.signup_plain("alice", PASSWORD).await;
    for (app, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let resp = app.login("alice", "wrong password").await;
            assert_error(resp, 401, "invalid_credentials").await;
        }
    }
    assert_locked(a.login("alice", PASSWORD).await, 30).await;
    assert_locked(b.login("alice", PASSWORD).await, 30).await;
    // The lock expires for both (they share the clock, as instances share time).
    a.advance(31);
    b.plain_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn second_factor_failures_on_both_instances_add_up_to_one_lockout() {
    let Some(a) = spawn_app().await else { return };
    let b = a.spawn_peer().await;
    let e = a.signup_mfa("alice", PASSWORD).await;
    let mfa_a = a.mfa_token("alice", PASSWORD).await;
    let mfa_b = b.mfa_token("alice", PASSWORD).await;
    for (app, mfa, n) in [(&a, &mfa_a, 3), (&b, &mfa_b, 2)] {
        for _ in 0..n {
            let resp = app
                .login_2fa("alice", &wrong_code(app, &e.secret), mfa)
                .await;
            assert_error(resp, 401, "invalid_otp").await;
        }
    }
    let resp = a.login_2fa("alice", &a.code_now(&e.secret), &mfa_a).await;
    assert_locked(resp, 30).await;
    let resp = b.login_2fa("alice", &b.code_now(&e.secret), &mfa_b).await;
    assert_locked(resp, 30).await;
    // /disable-mfa shares the counter, on either instance.
    let resp = b
        .disable_mfa("alice", PASSWORD, &b.code_now(&e.secret))
        .await;
    assert_locked(resp, 30).await;
}

/// Sends `/login-2fa` with `code` and each `(instance, mfa_token)` at once.
async fn race(requests: Vec<(&TestApp, String)>, code: &str) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut set = tokio::task::JoinSet::new();
    for (i, (app, mfa)) in requests.into_iter().enumerate() {
        let client = app.client.clone();
        let url = app.url("/login-2fa");
        let body = json!({"username": "alice", "token": code, "mfa_token": mfa});
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            let resp = client.post(url).json(&body).send().await.expect("sent");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("#{i}: not JSON: {text}"));
            (status, body)
        });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_sent_eight_times_at_once_to_two_instances_is_accepted_once() {
    // A high threshold, so the refused requests are 401 invalid_otp, not 429.
    let Some(a) = spawn_app_with(&["--lockout-threshold", "100"]).await else {
        return;
    };
    let b = a.spawn_peer().await;
    let e = a.signup_mfa("alice", PASSWORD).await;
    a.align_to_step_start();
    let mut requests = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        requests.push((app, app.mfa_token("alice", PASSWORD).await));
    }
    let code = a.code_now(&e.secret);
    let results = race(requests, &code).await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "exactly one success: {results:?}");
    for (status, body) in &results {
        if *status != 200 {
            assert_eq!(*status, 401, "{results:?}");
            assert_eq!(body["code"], "invalid_otp", "{results:?}");
        }
    }
    let session = ok[0]["token"].as_str().expect("session token");
    assert_eq!(a.me(session).await.status(), StatusCode::OK);
    assert_eq!(b.me(session).await.status(), StatusCode::OK);
}
