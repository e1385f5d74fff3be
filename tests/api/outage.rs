//! PostgreSQL going away under a running server, and coming back: /readyz
//! and every request that needs the database answer 503 `unavailable` (JSON,
//! no internals, quickly), /healthz stays 200, nothing is a 500, and the
//! service recovers by itself once the database is back. PostgreSQL only: in
//! the SQLite binary these tests return at once.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use super::backend::{self, Backend};
use super::helpers::{PASSWORD, assert_json_content_type, assert_ok_json, spawn_app_in};
use super::pg::PgCluster;

/// Requests during the outage wait at most this long for a connection.
const ACQUIRE_TIMEOUT_SECS: u64 = 2;
/// How long a request may take during the outage (acquire timeout + slack).
const OUTAGE_ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long the service may take to notice the database is back.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

/// Asserts a 503 `unavailable` JSON error that says nothing about the
/// database's internals.
async fn assert_unavailable(what: &str, resp: Response) {
    let status = resp.status();
    assert_json_content_type(&resp);
    let text = resp.text().await.expect("body");
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} during the outage: {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!(body["code"], "unavailable", "{what}: {body}");
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no detail in {body}"));
    assert!(!detail.is_empty(), "{what}: empty detail");
    let lower = text.to_lowercase();
    for word in [
        "postgres",
        "sqlx",
        "connection",
        "pool",
        "io error",
        "refused",
        "5432",
    ] {
        assert!(
            !lower.contains(word),
            "{what}: the answer leaks internals ({word:?}): {text}"
        );
    }
}

/// Sends `request`, asserting it is answered within [`OUTAGE_ANSWER_WITHIN`].
async fn timed(what: &str, request: impl std::future::Future<Output = Response>) -> Response {
    let started = Instant::now();
    let resp = tokio::time::timeout(OUTAGE_ANSWER_WITHIN, request)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {OUTAGE_ANSWER_WITHIN:?} during the outage"));
    eprintln!("{what}: {} in {:?}", resp.status(), started.elapsed());
    resp
}

#[tokio::test]
async fn the_service_answers_503_while_postgres_is_down_and_recovers_without_a_restart() {
    if backend::current() != Backend::Postgres {
        return;
    }
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let app = spawn_app_in(
        &cluster,
        &["--db-acquire-timeout", &ACQUIRE_TIMEOUT_SECS.to_string()],
    )
    .await;
    app.signup_plain("alice", PASSWORD).await;
    let e = app.signup_mfa("bob", PASSWORD).await;
    let session = app.plain_login("alice", PASSWORD).await;
    let mfa = app.mfa_token("bob", PASSWORD).await;
    assert_ok_json(app.get("/readyz").await).await;

    cluster.stop();

    // All at once: each waits up to the acquire timeout.
    let code = app.code_now(&e.secret);
    let empty = json!({});
    let (readyz, healthz, login, wrong_login, signup, login_2fa) = tokio::join!(
        timed("/readyz", app.get("/readyz")),
        timed("/healthz", app.get("/healthz")),
        timed("/login", app.login("alice", PASSWORD)),
        timed(
            "/login (wrong password)",
            app.login("alice", "wrong password")
        ),
        timed("/signup", app.signup("carol", PASSWORD, false)),
        timed("/login-2fa", app.login_2fa("bob", &code, &mfa)),
    );
    let (qrcode, enable_mfa, disable_mfa, me, logout, bad_input) = tokio::join!(
        timed("/qrcode", app.qrcode("bob", PASSWORD, None)),
        timed("/enable-mfa", app.enable_mfa("alice", PASSWORD)),
        timed("/disable-mfa", app.disable_mfa("bob", PASSWORD, "123456")),
        timed("/me", app.me(&session)),
        timed("/logout", app.logout(&session)),
        timed("/login (bad input)", app.post_json("/login", &empty)),
    );
    assert_unavailable("/readyz", readyz).await;
    assert_eq!(assert_ok_json(healthz).await, json!({"status": "ok"}));
    assert_unavailable("/login", login).await;
    assert_unavailable("/login (wrong password)", wrong_login).await;
    assert_unavailable("/signup", signup).await;
    assert_unavailable("/login-2fa", login_2fa).await;
    assert_unavailable("/qrcode", qrcode).await;
    assert_unavailable("/enable-mfa", enable_mfa).await;
    assert_unavailable("/disable-mfa", disable_mfa).await;
    assert_unavailable("/me", me).await;
    assert_unavailable("/logout", logout).await;
    // Bad input is still judged without the database.
    assert_eq!(bad_input.status(), StatusCode::UNPROCESSABLE_ENTITY);

    cluster.start_again();

    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let resp = app.get("/readyz").await;
        let status = resp.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "/readyz while recovering: {status} {}",
            resp.text().await.unwrap_or_default()
        );
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still 503 {RECOVERY_DEADLINE:?} after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything that was there before the outage still is.
    assert_ok_json(app.me(&session).await).await;
    app.plain_login("alice", PASSWORD).await;
    app.signup_plain("carol", PASSWORD).await;
    let resp = app.login_2fa("bob", &app.code_now(&e.secret), &mfa).await;
    assert_ok_json(resp).await;
}
