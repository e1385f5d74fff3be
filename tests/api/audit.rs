//! The audit trail: every security event lands in `audit_events` with its
//! time, user, client address and user agent (never a secret), readable by
//! the signed-in user (`GET /me/events`, their own, newest first, at most 50)
//! and by the operator (`twofactor audit [--user] [--since] [--limit]
//! [--json]`, run as a real process on the test app's database).
//!
//! Events are written before the response is sent, so nothing here polls.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;

use super::cli::op;
use super::helpers::{
    Enrollment, TestApp, assert_error, assert_locked, assert_ok_json, enrollment_from, query_param,
    spawn_app, wrong_code,
};

/// The user agent of the test's own HTTP client.
const AGENT: &str = "audit-test/1.0";
/// What the operator commands record as their user agent.
const CLI_AGENT: &str = "twofactor-cli";
/// A password that is easy to look for in the trail.
const PASSWORD: &str = "audit-password-Xq7-never-logged";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// `twofactor audit --json` plus `args`: the events, newest first.
async fn audit(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let events = op(app, &all).await.json_array();
    for e in &events {
        let keys: Vec<&str> = e
            .as_object()
            .unwrap_or_else(|| panic!("{e} is not an object"))
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "at",
            "username",
            "event",
            "detail",
            "client_addr",
            "user_agent",
        ] {
            assert!(keys.contains(&key), "no {key:?} in {e}");
        }
        assert!(e["at"].is_i64(), "at of {e}");
        assert!(e["event"].is_string(), "event of {e}");
    }
    assert_newest_first(&events);
    events
}

/// `GET /me/events` with `bearer`: asserts 200 and returns the events.
async fn me_events(app: &TestApp, bearer: &str) -> Vec<Value> {
    let resp = app
        .client
        .get(app.url("/me/events"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("request sent");
    let body = assert_ok_json(resp).await;
    let events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array in {body}"))
        .clone();
    for e in &events {
        let fields = e
            .as_object()
            .unwrap_or_else(|| panic!("{e} is not an object"));
        for key in ["at", "event", "detail", "client_addr", "user_agent"] {
            assert!(fields.contains_key(key), "no {key:?} in {e}");
        }
        assert!(e["at"].is_i64(), "at of {e}");
        assert!(e["event"].is_string(), "event of {e}");
        for key in ["detail", "client_addr", "user_agent"] {
            assert!(
                e[key].is_string() || e[key].is_null(),
                "{key} of {e} is neither a string nor null"
            );
        }
    }
    assert_newest_first(&events);
    events
}

#[track_caller]
fn assert_newest_first(events: &[Value]) {
    for pair in events.windows(2) {
        assert!(
            pair[0]["at"].as_i64() >= pair[1]["at"].as_i64(),
            "not newest first: {} before {}\nall: {events:#?}",
            pair[0],
            pair[1]
        );
    }
}

/// The events named `name`.
fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The one event named `name`; panics unless there is exactly one.
#[track_caller]
fn only<'a>(events: &'a [Value], name: &str) -> &'a Value {
    let found = named(events, name);
    assert_eq!(found.len(), 1, "one {name} expected in {events:#?}");
    found[0]
}

/// `(event, detail)` pairs, oldest first.
fn chronological(events: &[Value]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .rev()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["detail"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Asserts `events` (newest first) are exactly `requests` (oldest first),
/// each request's events in any order among themselves: newest first holds
/// between requests also within one second.
#[track_caller]
fn assert_requests(events: &[Value], requests: &[&[(&str, Option<&str>)]]) {
    let got = chronological(events);
    let want: usize = requests.iter().map(|r| r.len()).sum();
    assert_eq!(
        got.len(),
        want,
        "{want} events expected, oldest first: {requests:#?}\ngot, oldest first: {got:#?}"
    );
    let mut at = 0;
    for (i, request) in requests.iter().enumerate() {
        let mut expected: Vec<(String, Option<String>)> = request
            .iter()
            .map(|(e, d)| (e.to_string(), d.map(str::to_string)))
            .collect();
        let mut actual = got[at..at + request.len()].to_vec();
        expected.sort();
        actual.sort();
        assert_eq!(
            actual, expected,
            "request #{i} (oldest first); the whole trail, oldest first: {got:#?}"
        );
        at += request.len();
    }
}

/// An HTTP client that sends `agent` as its User-Agent.
fn client_with_agent(agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(agent)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Asserts a `127.0.0.1:PORT` client address.
#[track_caller]
fn assert_loopback_peer(event: &Value) {
    let addr = event["client_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_addr in {event}"));
    let port = addr
        .strip_prefix("127.0.0.1:")
        .unwrap_or_else(|| panic!("client_addr {addr:?} is not 127.0.0.1:PORT"));
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("client_addr {addr:?} has no port"));
    assert_ne!(port, 0, "{event}");
}

fn session_token(body: &Value) -> String {
    body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Everything the walk below handed out or sent that must never be stored.
#[derive(Default)]
struct Secrets {
    /// Long values: looked for anywhere in the output.
    long: Vec<String>,
    /// Codes (digits): looked for in the string fields of each event, not
    /// in its numeric time, which could contain them by chance.
    codes: Vec<String>,
}

impl Secrets {
    fn enrollment(&mut self, e: &Enrollment) {
        self.long.push(e.provisioning_uri.clone());
        self.long
            .push(query_param(&e.provisioning_uri, "secret").expect("secret in the uri"));
        self.long.push(hex::encode(&e.secret));
        for code in &e.recovery_codes {
            self.long.push(code.clone());
            self.long.push(code.replace('-', ""));
        }
    }
}

/// Asserts that no event of `events` nor `text` contains any of `secrets`.
#[track_caller]
fn assert_no_secrets(text: &str, events: &[Value], secrets: &Secrets) {
    for secret in &secrets.long {
        assert!(
            !text.contains(secret.as_str()),
            "the audit output contains the secret {secret:?}:\n{text}"
        );
    }
    for e in events {
        for (key, value) in e.as_object().unwrap() {
            let Some(s) = value.as_str() else { continue };
            for secret in secrets.long.iter().chain(&secrets.codes) {
                assert!(
                    !s.contains(secret.as_str()),
                    "{key} of {e} contains the secret {secret:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Signup with MFA, both factors right, wrong and replayed, a recovery code,
/// disable and enable MFA, logout and a password lockout, all with one
/// user agent; every event shows in /me/events (by request, newest first)
/// and identically in `twofactor audit --user NAME --json`.
#[tokio::test]
async fn every_security_event_appears_in_the_trail_after_its_flow() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.client = client_with_agent(AGENT);
    app.align_to_step_start();

    let e = app.signup_mfa("Walker", PASSWORD).await;
    let mfa = app.mfa_token("walker", PASSWORD).await;
    let wrong = wrong_code(&app, &e.secret);
    assert_error(
        app.login_2fa("walker", &wrong, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
    let code = app.code_now(&e.secret);
    let first = session_token(&assert_ok_json(app.login_2fa("walker", &code, &mfa).await).await);

    let mfa = app.mfa_token("walker", PASSWORD).await;
    assert_error(
        app.login_2fa("walker", &code, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
    let body = assert_ok_json(app.login_2fa("walker", &e.recovery_codes[0], &mfa).await).await;
    assert_eq!(body["recovery_codes_remaining"], 9, "{body}");
    let second = session_token(&body);

    // The next step's code (this step's is used up) turns MFA off.
    app.advance(app.totp_params().period);
    let next = app.code_now(&e.secret);
    assert_ok_json(app.disable_mfa("walker", PASSWORD, &next).await).await;
    let again: Enrollment =
        enrollment_from(&assert_ok_json(app.enable_mfa("walker", PASSWORD).await).await);
    assert_ne!(again.secret, e.secret);
    assert_eq!(app.logout(&first).await.status(), StatusCode::NO_CONTENT);
    for i in 0..5 {
        let resp = app.login("walker", &format!("wrong password {i}")).await;
        assert_error(resp, 401, "invalid_credentials").await;
    }

    let mine = me_events(&app, &second).await;
    let failure = ("password.failure", None::<&str>);
    let expected: &[&[(&str, Option<&str>)]] = &[
        &[("signup", Some("mfa=true")), ("mfa.enabled", None)],
        &[("password.success", None)],
        &[("second_factor.failure", None)],
        &[
            ("second_factor.success", Some("factor=totp")),
            ("mfa.confirmed", None),
        ],
        &[("password.success", None)],
        &[("second_factor.failure", None), ("replay.refused", None)],
        &[
            ("second_factor.success", Some("factor=recovery_code")),
            ("recovery_code.used", Some("remaining=9")),
        ],
        &[
            ("second_factor.success", Some("factor=totp")),
            ("mfa.disabled", None),
        ],
        &[("mfa.enabled", None)],
        &[("logout", None)],
        &[failure],
        &[failure],
        &[failure],
        &[failure],
        &[
            failure,
            ("lockout.started", Some("factor=password seconds=30")),
        ],
    ];
    // Details the spec leaves open are not compared: blank them out.
    let fixed: BTreeMap<&str, ()> = [
        "signup",
        "second_factor.success",
        "recovery_code.used",
        "lockout.started",
    ]
    .into_iter()
    .map(|n| (n, ()))
    .collect();
    let blank = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if !fixed.contains_key(e["event"].as_str().unwrap()) {
                    e["detail"] = Value::Null;
                }
                e
            })
            .collect()
    };
    assert_requests(&blank(&mine), expected);
    for event in &mine {
        assert_eq!(event["user_agent"], AGENT, "{event}");
        assert_loopback_peer(event);
    }
    let signed_up = only(&mine, "signup")["at"].as_i64().unwrap();
    let now = app.clock.now();
    assert!(
        (now - 60..=now).contains(&signed_up),
        "signup at {signed_up}, now {now} (test clock)"
    );
    // The disable happened a time step after the first logins.
    let disabled = only(&mine, "mfa.disabled")["at"].as_i64().unwrap();
    assert!(
        disabled >= signed_up + app.totp_params().period as i64,
        "{mine:#?}"
    );

    // The operator sees the same events, under the case-folded name.
    let trail = audit(&app, &["--user", "walker"]).await;
    assert_requests(&blank(&trail), expected);
    for (seen, mine) in trail.iter().zip(&mine) {
        assert_eq!(seen["username"], "walker", "{seen}");
        for key in ["at", "event", "detail", "client_addr", "user_agent"] {
            assert_eq!(
                seen[key], mine[key],
                "{key}: audit {seen} vs /me/events {mine}"
            );
        }
    }
}

#[tokio::test]
async fn signup_without_mfa_records_mfa_false_and_no_mfa_event() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("plain", PASSWORD).await;
    let token = app.plain_login("plain", PASSWORD).await;
    let mine = me_events(&app, &token).await;
    assert_requests(
        &mine,
        &[
            &[("signup", Some("mfa=false"))],
            &[("password.success", mine[0]["detail"].as_str())],
        ],
    );
    // No User-Agent header: none recorded.
    for event in &mine {
        assert!(event["user_agent"].is_null(), "{event}");
        assert_loopback_peer(event);
    }
}

#[tokio::test]
async fn a_wrong_password_is_recorded_on_every_endpoint_that_takes_one() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("pat", PASSWORD).await;
    let token = app.full_login("pat", PASSWORD, &e.secret).await;
    let wrong = "not the password";
    assert_error(app.login("pat", wrong).await, 401, "invalid_credentials").await;
    assert_error(
        app.qrcode("pat", wrong, None).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.enable_mfa("pat", wrong).await,
        401,
        "invalid_credentials",
    )
    .await;
    let code = app.code_at_step_offset(&e.secret, 1);
    assert_error(
        app.disable_mfa("pat", wrong, &code).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The right password with a wrong code on /disable-mfa: a refused code.
    let bad = wrong_code(&app, &e.secret);
    assert_error(
        app.disable_mfa("pat", PASSWORD, &bad).await,
        401,
        "invalid_otp",
    )
    .await;

    let mine = me_events(&app, &token).await;
    assert_eq!(named(&mine, "password.failure").len(), 4, "{mine:#?}");
    assert_eq!(named(&mine, "second_factor.failure").len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["event"], "second_factor.failure", "{mine:#?}");
    assert!(named(&mine, "lockout.started").is_empty(), "{mine:#?}");
}

#[tokio::test]
async fn me_events_shows_only_the_callers_events_newest_first() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.advance(5);
    let alice = app.plain_login("alice", PASSWORD).await;
    app.advance(5);
    app.signup_plain("bob", PASSWORD).await;
    let bob = app.plain_login("bob", PASSWORD).await;
    assert_error(
        app.login("bob", "bob's wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    app.advance(5);
    assert_error(
        app.login("alice", "alice's wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    // Two requests in the same second: the later one is listed first.
    let agent = client_with_agent("second-request/1");
    let resp = agent
        .post(app.url("/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let mine = me_events(&app, &alice).await;
    let names: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "password.success",
            "password.failure",
            "password.success",
            "signup"
        ],
        "{mine:#?}"
    );
    assert_eq!(mine[0]["user_agent"], "second-request/1", "{mine:#?}");
    let at: Vec<i64> = mine.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(at[1] >= at[2] + 5 && at[2] >= at[3] + 5, "{mine:#?}");

    let theirs = me_events(&app, &bob).await;
    let names: Vec<&str> = theirs
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["password.failure", "password.success", "signup"],
        "{theirs:#?}"
    );
    assert!(
        theirs[2]["at"].as_i64().unwrap() >= at[2] + 5,
        "{theirs:#?}"
    );

    // No token, a made-up one, or an ended session: 401.
    let resp = app.get("/me/events").await;
    assert_error(resp, 401, "unauthorized").await;
    let made_up = "A".repeat(43);
    let resp = app
        .client
        .get(app.url("/me/events"))
        .bearer_auth(&made_up)
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    assert_eq!(app.logout(&bob).await.status(), StatusCode::NO_CONTENT);
    let resp = app
        .client
        .get(app.url("/me/events"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn me_events_lists_at_most_the_50_newest() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("busy", PASSWORD).await;
    let mut last = String::new();
    for _ in 0..55 {
        last = app.plain_login("busy", PASSWORD).await;
    }
    let mine = me_events(&app, &last).await;
    assert_eq!(mine.len(), 50, "{mine:#?}");
    assert!(named(&mine, "signup").is_empty(), "the oldest is left out");
    assert_eq!(named(&mine, "password.success").len(), 50);
    assert_eq!(audit(&app, &["--user", "busy"]).await.len(), 56);
}

#[tokio::test]
async fn a_failed_login_for_an_unknown_username_is_recorded_under_that_name_only() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.signup_plain("alice", PASSWORD).await;
    let alice = app.plain_login("alice", PASSWORD).await;
    app.client = client_with_agent(AGENT);
    assert_error(
        app.login("Ghost.Name", "a guessed password").await,
        401,
        "invalid_credentials",
    )
    .await;

    let all = audit(&app, &[]).await;
    let ghost = only(&all, "password.failure");
    assert_eq!(ghost["username"], "ghost.name", "{ghost}");
    assert_eq!(ghost["user_agent"], AGENT, "{ghost}");
    assert_loopback_peer(ghost);
    assert_eq!(audit(&app, &["--user", "ghost.name"]).await.len(), 1);

    let mine = me_events(&app, &alice).await;
    assert!(named(&mine, "password.failure").is_empty(), "{mine:#?}");

    // Whoever takes the name later does not inherit the stranger's attempt.
    app.signup_plain("ghost.name", PASSWORD).await;
    let token = app.plain_login("Ghost.Name", PASSWORD).await;
    let theirs = me_events(&app, &token).await;
    let names: Vec<&str> = theirs
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["password.success", "signup"], "{theirs:#?}");
    // The operator sees all three under the name.
    assert_eq!(audit(&app, &["--user", "ghost.name"]).await.len(), 3);
}

#[tokio::test]
async fn no_audit_event_contains_a_password_secret_code_recovery_code_or_token() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.client = client_with_agent(AGENT);
    app.align_to_step_start();
    let mut secrets = Secrets::default();
    let wrong_passwords = ["wrong-Pa55word-one", "wrong-Pa55word-two"];
    secrets.long.push(PASSWORD.to_string());
    secrets.long.extend(wrong_passwords.map(String::from));

    let e = app.signup_mfa("keeper", PASSWORD).await;
    secrets.enrollment(&e);
    // The QR code, while the enrollment is pending.
    assert_eq!(
        app.qrcode("keeper", PASSWORD, None).await.status(),
        StatusCode::OK
    );
    let mfa = app.mfa_token("keeper", PASSWORD).await;
    secrets.long.push(mfa.clone());
    let bad = wrong_code(&app, &e.secret);
    secrets.codes.push(bad.clone());
    assert_error(
        app.login_2fa("keeper", &bad, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
    let code = app.code_now(&e.secret);
    secrets.codes.push(code.clone());
    let first = session_token(&assert_ok_json(app.login_2fa("keeper", &code, &mfa).await).await);
    secrets.long.push(first.clone());
    let mfa = app.mfa_token("keeper", PASSWORD).await;
    secrets.long.push(mfa.clone());
    assert_error(
        app.login_2fa("keeper", &code, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
    let body = assert_ok_json(app.login_2fa("keeper", &e.recovery_codes[3], &mfa).await).await;
    let second = session_token(&body);
    secrets.long.push(second.clone());
    // A spent recovery code tried again, and a made-up one.
    let mfa = app.mfa_token("keeper", PASSWORD).await;
    secrets.long.push(mfa.clone());
    assert_error(
        app.login_2fa("keeper", &e.recovery_codes[3], &mfa).await,
        401,
        "invalid_otp",
    )
    .await;
    let made_up = "zzzz-zzzz-zzzz-zzzz";
    secrets.long.push(made_up.to_string());
    assert_error(
        app.login_2fa("keeper", made_up, &mfa).await,
        401,
        "invalid_otp",
    )
    .await;

    for wrong in wrong_passwords {
        assert_error(
            app.qrcode("keeper", wrong, None).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert_error(
            app.login("nobody-here", wrong).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    app.advance(app.totp_params().period);
    let next = app.code_now(&e.secret);
    secrets.codes.push(next.clone());
    assert_ok_json(app.disable_mfa("keeper", PASSWORD, &next).await).await;
    let again = enrollment_from(&assert_ok_json(app.enable_mfa("keeper", PASSWORD).await).await);
    secrets.enrollment(&again);
    let mfa = app.mfa_token("keeper", PASSWORD).await;
    secrets.long.push(mfa.clone());
    let code = app.code_now(&again.secret);
    secrets.codes.push(code.clone());
    let third = session_token(&assert_ok_json(app.login_2fa("keeper", &code, &mfa).await).await);
    secrets.long.push(third.clone());
    assert_eq!(app.logout(&first).await.status(), StatusCode::NO_CONTENT);
    for wrong in wrong_passwords.iter().cycle().take(5) {
        assert_error(app.login("keeper", wrong).await, 401, "invalid_credentials").await;
    }
    assert_locked(app.login("keeper", PASSWORD).await, 30).await;

    let run = op(&app, &["audit", "--json"]).await;
    let events = run.json_array();
    assert!(
        events.len() >= 20,
        "the flows above were recorded: {events:#?}"
    );
    assert_no_secrets(&run.stdout, &events, &secrets);
    let table = op(&app, &["audit"]).await;
    table.success();
    assert!(
        table.stdout.contains("recovery_code.used"),
        "{}",
        table.stdout
    );
    assert_no_secrets(&table.stdout, &[], &secrets);
    let mine = me_events(&app, &third).await;
    assert_no_secrets(&serde_json::to_string(&mine).unwrap(), &mine, &secrets);
}

#[tokio::test]
async fn operator_actions_are_recorded_with_the_cli_user_agent() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.full_login("alice", PASSWORD, &e.secret).await;
    for _ in 0..5 {
        assert_error(
            app.login("alice", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    app.signup_plain("bob", PASSWORD).await;

    op(&app, &["user", "unlock", "Alice"]).await.success();
    op(&app, &["user", "reset-mfa", "ALICE"]).await.success();
    op(&app, &["user", "delete", "bob"]).await.success();
    let new_key = app.dir.path().join("new.key").display().to_string();
    op(&app, &["rotate-key", "--new-key-file", &new_key])
        .await
        .success();

    let all = audit(&app, &[]).await;
    let names: Vec<&str> = all
        .iter()
        .take(4)
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "operator.rotate_key",
            "operator.delete",
            "operator.reset_mfa",
            "operator.unlock"
        ],
        "{all:#?}"
    );
    for (name, user) in [
        ("operator.unlock", Value::from("alice")),
        ("operator.reset_mfa", Value::from("alice")),
        ("operator.delete", Value::from("bob")),
        ("operator.rotate_key", Value::Null),
    ] {
        let event = only(&all, name);
        assert_eq!(event["username"], user, "{event}");
        assert_eq!(event["user_agent"], CLI_AGENT, "{event}");
        let at = event["at"].as_i64().unwrap();
        let now = unix_now();
        assert!((now - 120..=now + 5).contains(&at), "{event} (now {now})");
    }
    // Per user, too; and the deleted account's history outlives it.
    let alice = audit(&app, &["--user", "alice"]).await;
    assert_eq!(alice[0]["event"], "operator.reset_mfa", "{alice:#?}");
    assert_eq!(alice[1]["event"], "operator.unlock", "{alice:#?}");
    let bob = audit(&app, &["--user", "bob"]).await;
    let names: Vec<&str> = bob.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["operator.delete", "signup"], "{bob:#?}");

    // The reset shows in alice's own list as well.
    let token = app.plain_login("alice", PASSWORD).await;
    let mine = me_events(&app, &token).await;
    assert!(!named(&mine, "operator.reset_mfa").is_empty(), "{mine:#?}");
    assert!(named(&mine, "operator.delete").is_empty(), "{mine:#?}");

    // A new account under the deleted name starts with a clean list.
    app.signup_plain("bob", PASSWORD).await;
    let token = app.plain_login("bob", PASSWORD).await;
    let theirs = me_events(&app, &token).await;
    let names: Vec<&str> = theirs
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["password.success", "signup"], "{theirs:#?}");

    // Last, so that it cannot hide the checks above: an unlock of an
    // existing account is that account's event (user id set) like a reset.
    assert!(!named(&mine, "operator.unlock").is_empty(), "{mine:#?}");
}

#[tokio::test]
async fn audit_filters_by_since_and_limit_and_refuses_a_bad_since() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.plain_login("alice", PASSWORD).await;
    app.advance(100);
    app.signup_plain("bob", PASSWORD).await;
    let all = audit(&app, &[]).await;
    assert_eq!(all.len(), 3, "{all:#?}");

    for age in ["1h", "15m", "2h", "7d"] {
        assert_eq!(audit(&app, &["--since", age]).await, all, "--since {age}");
    }
    // Unix seconds: from bob's signup on, and nothing from the future.
    let bob_at = all[0]["at"].as_i64().unwrap();
    let since = bob_at.to_string();
    let recent = audit(&app, &["--since", &since]).await;
    assert_eq!(recent, all[..1], "--since {since}");
    let tomorrow = (unix_now().max(app.clock.now()) + 86_400).to_string();
    assert!(audit(&app, &["--since", &tomorrow]).await.is_empty());

    let two = audit(&app, &["--limit", "2"]).await;
    assert_eq!(two, all[..2]);
    let one = audit(&app, &["--user", "alice", "--limit", "1"]).await;
    assert_eq!(one, all[1..2]);

    for bad in ["yesterday", "15x", "soon"] {
        let run = op(&app, &["audit", "--since", bad]).await;
        assert!(
            !run.status.success(),
            "--since {bad} should fail: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains(bad) && run.stderr.contains("since"),
            "stderr for --since {bad} should name the flag and the value: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn audit_lists_the_100_newest_events_by_default() {
    let Some(app) = spawn_app().await else { return };
    for i in 0..51 {
        let resp = app.signup(&format!("user{i:02}"), PASSWORD, true).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let all = audit(&app, &[]).await;
    assert_eq!(all.len(), 100, "102 events, 100 shown");
    assert_eq!(all[0]["username"], "user50", "{}", all[0]);
    assert!(
        all.iter().all(|e| e["username"] != "user00"),
        "the oldest are left out"
    );
    assert_eq!(audit(&app, &["--limit", "200"]).await.len(), 102);
}

#[tokio::test]
async fn a_long_user_agent_is_stored_cut_to_256_characters() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let long = format!("long-agent/{}", "x".repeat(300));
    app.client = client_with_agent(&long);
    app.signup_plain("agent", PASSWORD).await;
    let token = app.plain_login("agent", PASSWORD).await;
    let mine = me_events(&app, &token).await;
    assert_eq!(mine.len(), 2, "{mine:#?}");
    for event in &mine {
        let stored = event["user_agent"].as_str().expect("a user agent");
        assert_eq!(stored.chars().count(), 256, "{event}");
        assert!(long.starts_with(stored), "{event}");
    }
}
