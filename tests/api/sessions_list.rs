//! GET /me/sessions and DELETE /me/sessions/{id}: a user sees their live
//! sessions (by an opaque id, never the token) and ends any of them.

use reqwest::StatusCode;

use super::helpers::{PASSWORD, assert_error, assert_ok_json, spawn_app};

#[tokio::test]
async fn sessions_are_listed_with_where_they_came_from_and_the_current_one_marked() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let other = app.plain_login("alice", PASSWORD).await;
    let resp = app
        .client
        .post(app.url("/login"))
        .header("user-agent", "alice-laptop/1.0")
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let bearer = assert_ok_json(resp).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = assert_ok_json(app.sessions(&bearer).await).await;
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "alice-laptop/1.0");
    // Both were made in the same second: the order is still defined.
    assert_eq!(sessions[0]["current"], true, "this session first: {body}");
    // From the other session's side, it is the one listed first.
    let seen = assert_ok_json(app.sessions(&other).await).await;
    assert_eq!(seen["sessions"][0]["current"], true, "{seen}");
    assert!(
        current[0]["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    for s in sessions {
        let id = s["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(s["created_at"].is_i64() && s["expires_at"].is_i64());
    }
    let text = body.to_string();
    assert!(!text.contains(&bearer) && !text.contains(&other));
}

#[tokio::test]
async fn ending_another_session_logs_it_out_and_is_audited() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let other = app.plain_login("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let body = assert_ok_json(app.sessions(&bearer).await).await;
    let id = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app.revoke_session(&bearer, &id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(app.me(&other).await, 401, "unauthorized").await;
    assert_ok_json(app.me(&bearer).await).await;
    let resp = app.revoke_session(&bearer, &id).await;
    assert_error(resp, 404, "session_not_found").await;
    let events = app.event_names(&bearer).await;
    assert!(events.iter().any(|e| e == "session.revoked"), "{events:?}");
    let sample = r#"twofactor_account_actions_total{action="session_revoked"}"#;
    assert_eq!(app.metric(sample).await, 1);
}

#[tokio::test]
async fn another_users_session_is_404_and_stays_alive() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    app.signup_plain("bob", PASSWORD).await;
    let alice = app.plain_login("alice", PASSWORD).await;
    let bob = app.plain_login("bob", PASSWORD).await;
    let body = assert_ok_json(app.sessions(&bob).await).await;
    let bobs = body["sessions"][0]["id"].as_str().unwrap().to_owned();
    let resp = app.revoke_session(&alice, &bobs).await;
    assert_error(resp, 404, "session_not_found").await;
    assert_ok_json(app.me(&bob).await).await;
    for junk in ["x", &"a".repeat(65)] {
        assert_error(
            app.revoke_session(&alice, junk).await,
            404,
            "session_not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn a_user_may_end_their_current_session() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let body = assert_ok_json(app.sessions(&bearer).await).await;
    let id = body["sessions"][0]["id"].as_str().unwrap().to_owned();
    let resp = app.revoke_session(&bearer, &id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(app.me(&bearer).await, 401, "unauthorized").await;
}
