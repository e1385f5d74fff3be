use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::{PASSWORD, assert_error, assert_error_detail, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_same_code_cannot_be_used_twice() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let code = app.code_now(&e.secret);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &code, &mfa).await.status(),
        StatusCode::OK
    );
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app.login_2fa("alice", &code, &mfa).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP").await;
    // The refused replay did not spend the mfa_token: the next step's code works.
    app.advance(30);
    let resp = app.login_2fa("alice", &app.code_now(&e.secret), &mfa).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_same_code_with_spaces_is_still_a_replay() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let code = app.code_now(&e.secret);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &code, &mfa).await.status(),
        StatusCode::OK
    );
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let resp = app.login_2fa("alice", &spaced, &mfa).await;
    assert_error(resp, 401, "invalid_otp").await;
}

#[tokio::test]
async fn a_code_of_an_earlier_step_is_refused_after_a_later_one_was_accepted() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let next = app.code_at_step_offset(&e.secret, 1);
    let now = app.code_now(&e.secret);
    let prev = app.code_at_step_offset(&e.secret, -1);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &next, &mfa).await.status(),
        StatusCode::OK
    );
    for code in [now, prev] {
        if code == next {
            continue;
        }
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let resp = app.login_2fa("alice", &code, &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
}

#[tokio::test]
async fn a_code_used_on_login_2fa_is_refused_on_disable_mfa() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let code = app.code_now(&e.secret);
    let mfa = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(
        app.login_2fa("alice", &code, &mfa).await.status(),
        StatusCode::OK
    );
    let resp = app.disable_mfa("alice", PASSWORD, &code).await;
    assert_error_detail(resp, 401, "invalid_otp", "Invalid OTP for disabling MFA").await;
    // A later step's code disables it.
    app.advance(30);
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn replay_protection_is_per_user() {
    let Some(app) = spawn_app().await else { return };
    let a = app.signup_mfa("alice", PASSWORD).await;
    let b = app.signup_mfa("bob", PASSWORD).await;
    app.full_login("alice", PASSWORD, &a.secret).await;
    // Bob's code for the same step is unaffected by alice's.
    app.full_login("bob", PASSWORD, &b.secret).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_logins_with_one_code_let_exactly_one_through() {
    const N: usize = 16;
    // The fifteen refused replays are counted failures; a high threshold keeps
    // them from turning into 429s so each one shows as invalid_otp.
    let Some(app) = spawn_app_with(&["--lockout-threshold", "100"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mut tokens = Vec::with_capacity(N);
    for _ in 0..N {
        tokens.push(app.mfa_token("alice", PASSWORD).await);
    }
    let code = app.code_now(&e.secret);
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut set = tokio::task::JoinSet::new();
    for mfa in tokens {
        let client = app.client.clone();
        let url = app.url("/login-2fa");
        let code = code.clone();
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            let resp = client
                .post(url)
                .json(&json!({"username": "alice", "token": code, "mfa_token": mfa}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        });
    }
    let mut ok = 0;
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        let (status, body) = r.unwrap();
        match status {
            200 => ok += 1,
            401 => {
                assert_eq!(body["code"], "invalid_otp", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        ok, 1,
        "exactly one login may use the code ({refused} refused)"
    );
    assert_eq!(refused, N - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_disable_and_login_with_one_code_let_exactly_one_through() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let code = app.code_now(&e.secret);
    let (a, b) = tokio::join!(
        app.login_2fa("alice", &code, &mfa),
        app.disable_mfa("alice", PASSWORD, &code)
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "statuses {statuses:?}"
    );
    assert!(statuses.contains(&401), "statuses {statuses:?}");
}
