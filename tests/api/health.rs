//! Liveness and readiness probes.

use serde_json::json;

use crate::helpers::{assert_ok_json, spawn_app};

#[tokio::test]
async fn healthz_says_the_process_is_up() {
    let app = spawn_app().await;
    let body = assert_ok_json(app.get("/healthz").await).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_says_the_database_answers() {
    let app = spawn_app().await;
    let body = assert_ok_json(app.get("/readyz").await).await;
    assert_eq!(body, json!({"status": "ready"}));
}

#[tokio::test]
async fn readyz_survives_a_restart_on_the_same_database() {
    let mut app = spawn_app().await;
    app.signup_plain("alice", "correct horse").await;
    app.restart().await;
    assert_ok_json(app.get("/readyz").await).await;
    app.plain_login("alice", "correct horse").await;
}
