//! Many /login-2fa successes at once: on PostgreSQL the accepted codes
//! waiting together are written in one statement and one commit
//! (`src/db/login_write.rs`); every login must still get its own session,
//! and a replay or a foreign `mfa_token` inside a batch must be refused
//! alone.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use twofactor::auth::tokens;
use twofactor::db::credentials;
use twofactor::db::login_write::{self, TotpLogin};
use twofactor::db::sessions::NewSession;

use super::helpers::{PASSWORD, open_db, spawn_app, spawn_app_with, wrong_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_of_many_accounts_each_get_their_own_session_and_replays_are_refused() {
    const USERS: usize = 40;
    let Some(app) = spawn_app_with(&["--lockout-threshold", "100"]).await else {
        return;
    };
    let mut secrets = Vec::new();
    for n in 0..USERS {
        secrets.push(app.signup_mfa(&format!("user{n}"), PASSWORD).await.secret);
    }
    // (username, the account whose code is sent, mfa_token, expected code
    // of a refusal): every fifth account tries its code twice, with two
    // mfa_tokens, and every seventh also sends the next account's
    // mfa_token under its own name.
    let mut asks = Vec::new();
    for n in 0..USERS {
        let name = format!("user{n}");
        asks.push((
            name.clone(),
            n,
            app.mfa_token(&name, PASSWORD).await,
            "invalid_otp",
        ));
        if n % 5 == 0 {
            asks.push((
                name.clone(),
                n,
                app.mfa_token(&name, PASSWORD).await,
                "invalid_otp",
            ));
        }
        if n % 7 == 0 {
            let next = format!("user{}", (n + 1) % USERS);
            let foreign = app.mfa_token(&next, PASSWORD).await;
            asks.push((name.clone(), n, foreign, "invalid_mfa_token"));
        }
    }
    app.align_to_step_start();
    let mut tasks = JoinSet::new();
    for (name, account, mfa, refusal) in asks {
        let request = app.client.post(app.url("/login-2fa")).json(&json!({
            "username": name, "token": app.code_now(&secrets[account]), "mfa_token": mfa,
        }));
        tasks.spawn(async move {
            let resp = request.send().await.expect("the request is answered");
            let status = resp.status();
            let body: Value = resp.json().await.expect("a JSON body");
            (name, refusal, status, body)
        });
    }
    let mut sessions = std::collections::HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (name, refusal, status, body) = done.expect("the task ends");
        match status {
            StatusCode::OK => {
                assert_eq!(refusal, "invalid_otp", "a foreign mfa_token let {name} in");
                let token = body["token"].as_str().expect("a token").to_owned();
                let earlier = sessions.insert(name.clone(), token);
                assert!(earlier.is_none(), "{name}'s code was accepted twice");
            }
            StatusCode::UNAUTHORIZED => assert_eq!(body["code"], refusal, "{name}: {body}"),
            other => panic!("{name}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(sessions.len(), USERS, "every account logs in once");
    for (name, token) in &sessions {
        let me: Value = app.me(token).await.json().await.expect("a JSON body");
        assert_eq!(me["username"], name.as_str(), "someone else's session");
    }
}

/// The batched write itself, on PostgreSQL: logins submitted together (in
/// batches whose sizes are padded to a power of two) are each written or,
/// for a step already used, refused with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_writes_each_login_and_refuses_a_used_step_or_a_lockout_alone() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    let Some(writes) = db.login_writes().cloned() else {
        return; // SQLite: its writer's group commit, tested in group_commit.rs
    };
    app.align_to_step_start();
    let now = app.clock.now();
    let step = now / i64::try_from(app.totp_params().period).unwrap();
    // Six accounts, and one of them twice; then one whose code of this
    // step was used already, and one locked out after five wrong codes:
    // nine logins, so whatever way they are split into batches, one is
    // padded.
    let mut names: Vec<String> = (0..6).map(|n| format!("user{n}")).collect();
    for name in &names {
        app.signup_mfa(name, PASSWORD).await;
    }
    let used = app.signup_mfa("used", PASSWORD).await;
    app.full_login("used", PASSWORD, &used.secret).await;
    let locked = app.signup_mfa("locked", PASSWORD).await;
    let mfa = app.mfa_token("locked", PASSWORD).await;
    for _ in 0..5 {
        let wrong = wrong_code(&app, &locked.secret);
        app.login_2fa("locked", &wrong, &mfa).await;
    }
    names.extend(["used".to_owned(), "locked".to_owned()]);
    let mut logins = Vec::new();
    for (n, name) in names.iter().enumerate() {
        for _ in 0..if n == 0 { 2 } else { 1 } {
            let mfa = app.mfa_token(name, PASSWORD).await;
            let challenge = tokens::parse(&mfa).expect("an mfa_token");
            let (user_id, counting) =
                credentials::counting_for_challenge(db.reader(), challenge.key(), name, now)
                    .await
                    .expect("the read")
                    .expect("a challenge and a device");
            let device = &counting.devices[0];
            logins.push((
                name.clone(),
                user_id,
                device.id,
                device.confirmed_at,
                challenge,
            ));
        }
    }
    let mut tasks = JoinSet::new();
    for (i, (name, user_id, device, confirmed_at, challenge)) in logins.into_iter().enumerate() {
        let writes = writes.clone();
        tasks.spawn(async move {
            let issued = tokens::issue();
            let public_id = format!("batch-test-{i}");
            let session = NewSession {
                key: &issued.key,
                public_id: &public_id,
                user_id,
                now,
                expires_at: now + 3600,
                client_addr: None,
                user_agent: Some("login_batch test"),
            };
            let login = TotpLogin {
                credential_id: device,
                step,
                drift_steps: 0,
                confirm: confirmed_at.is_none(),
                now,
                subject: &name,
                challenge: &challenge,
                session: &session,
            };
            let written = login_write::write(&writes, &login)
                .await
                .expect("the batch is answered");
            (name, written, issued.token)
        });
    }
    let mut written = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (name, ok, token) = done.expect("the task ends");
        if ok {
            let me: Value = app.me(&token).await.json().await.expect("a JSON body");
            assert_eq!(me["username"], name.as_str(), "the session is {name}'s");
            written.push(name);
        } else {
            let resp = app.me(&token).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "nothing written");
        }
    }
    written.sort();
    let expected: Vec<String> = (0..6).map(|n| format!("user{n}")).collect();
    assert_eq!(
        written, expected,
        "one login per account; user0's second, the used step and the lockout refused"
    );
}
