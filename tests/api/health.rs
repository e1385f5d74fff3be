//! Liveness and readiness probes.

use serde_json::json;

use super::helpers::{assert_ok_json, spawn_app};

#[tokio::test]
async fn healthz_says_the_process_is_up() {
    let Some(app) = spawn_app().await else { return };
    let body = assert_ok_json(app.get("/healthz").await).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_says_the_database_answers() {
    let Some(app) = spawn_app().await else { return };
    let body = assert_ok_json(app.get("/readyz").await).await;
    assert_eq!(body, json!({"status": "ready"}));
}

#[tokio::test]
async fn readyz_survives_a_restart_on_the_same_database() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    app.signup_plain("alice", "correct horse").await;
    app.restart().await;
    assert_ok_json(app.get("/readyz").await).await;
    app.plain_login("alice", "correct horse").await;
}
