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

use super::helpers::{PASSWORD, TestApp, open_db, spawn_app, spawn_app_with, wrong_code};

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
    let Some((db, writes, now, step)) = batched_writes(&app).await else {
        return; // SQLite: its writer's group commit, tested in group_commit.rs
    };
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
            logins.push(read_login(&db, name, &mfa, now).await);
        }
    }
    let mut tasks = JoinSet::new();
    for (i, login) in logins.into_iter().enumerate() {
        tasks.spawn(write_login(writes.clone(), login, i, step, now));
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

/// The batched write when a login's challenge was spent between its read
/// and its write (here by a login of the step before, with the same
/// mfa_token): that login is left out with nothing of it written, so its
/// device's replay mark does not move and the code of this step still logs
/// in afterwards. Whatever way the two logins are split into batches, the
/// other is either written whole or not at all (a statement that moved a
/// device's mark before finding the challenge gone would have to undo its
/// whole batch; BENCHMARKS.md, session 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_whose_challenge_was_spent_meanwhile_is_left_out_and_burns_no_code() {
    let Some(app) = spawn_app().await else { return };
    let Some((db, writes, now, step)) = batched_writes(&app).await else {
        return; // SQLite: its writer's group commit, tested in group_commit.rs
    };
    let spent = app.signup_mfa("spent", PASSWORD).await;
    let other = app.signup_mfa("other", PASSWORD).await;
    let mfa = app.mfa_token("spent", PASSWORD).await;
    let raced = read_login(&db, "spent", &mfa, now).await;
    let mfa_other = app.mfa_token("other", PASSWORD).await;
    let alone = read_login(&db, "other", &mfa_other, now).await;
    // The race: the same mfa_token spent meanwhile with the step before's code.
    let resp = app
        .login_2fa("spent", &app.code_at_step_offset(&spent.secret, -1), &mfa)
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "the step before's code");
    let (a, b) = tokio::join!(
        write_login(writes.clone(), raced, 0, step, now),
        write_login(writes.clone(), alone, 1, step, now),
    );
    assert!(!a.1, "a login whose challenge is gone is not written");
    let resp = app.me(&a.2).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no session of it");
    // Neither device's mark moved to this step unless its login was written.
    let token = app.full_login("spent", PASSWORD, &spent.secret).await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    if b.1 {
        let me: Value = app.me(&b.2).await.json().await.expect("a JSON body");
        assert_eq!(me["username"], "other", "the other login is written whole");
    } else {
        let resp = app.me(&b.2).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "nothing written");
        let token = app.full_login("other", PASSWORD, &other.secret).await;
        assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    }
}

/// The database and its batched write, at the start of a time step (now and
/// its step); `None` on SQLite.
async fn batched_writes(
    app: &TestApp,
) -> Option<(twofactor::db::Db, login_write::LoginWrites, i64, i64)> {
    let db = open_db(&app.database_url).await;
    let writes = db.login_writes().cloned()?;
    app.align_to_step_start();
    let now = app.clock.now();
    let step = now / i64::try_from(app.totp_params().period).unwrap();
    Some((db, writes, now, step))
}

/// What the batched write needs of a login, read as /login-2fa reads it.
struct ReadLogin {
    name: String,
    user_id: i64,
    device: i64,
    confirmed_at: Option<i64>,
    challenge: tokens::TokenKey,
}

async fn read_login(db: &twofactor::db::Db, name: &str, mfa: &str, now: i64) -> ReadLogin {
    let challenge = tokens::parse(mfa).expect("an mfa_token");
    let (user_id, counting) =
        credentials::counting_for_challenge(db.reader(), challenge.key(), name, now)
            .await
            .expect("the read")
            .expect("a challenge and a device");
    let device = &counting.devices[0];
    ReadLogin {
        name: name.to_owned(),
        user_id,
        device: device.id,
        confirmed_at: device.confirmed_at,
        challenge,
    }
}

/// Submits `login` (the `i`th) to the batched write with a new session:
/// its name, whether it was written, and the session's bearer token.
async fn write_login(
    writes: login_write::LoginWrites,
    login: ReadLogin,
    i: usize,
    step: i64,
    now: i64,
) -> (String, bool, String) {
    let issued = tokens::issue();
    let public_id = format!("batch-test-{i}");
    let session = NewSession {
        key: &issued.key,
        public_id: &public_id,
        user_id: login.user_id,
        now,
        expires_at: now + 3600,
        client_addr: None,
        user_agent: Some("login_batch test"),
    };
    let write = TotpLogin {
        credential_id: login.device,
        step,
        drift_steps: 0,
        confirm: login.confirmed_at.is_none(),
        now,
        subject: &login.name,
        challenge: &login.challenge,
        session: &session,
    };
    let written = login_write::write(&writes, &write, None)
        .await
        .expect("the batch is answered");
    (login.name, written, issued.token)
}
