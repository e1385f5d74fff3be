//! Many session lookups at once: on PostgreSQL the lookups waiting together
//! go to the database in one statement (`src/db/session_reads.rs`); every
//! request must still get its own session's answer, and a revoked or
//! unknown token none.

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use super::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn concurrent_me_requests_each_get_their_own_session_and_revoked_ones_get_401() {
    let Some(app) = spawn_app().await else { return };
    let mut live = Vec::new();
    let mut revoked = Vec::new();
    for n in 0..12 {
        let name = format!("user{n}");
        app.signup_plain(&name, PASSWORD).await;
        for _ in 0..3 {
            live.push((name.clone(), app.plain_login(&name, PASSWORD).await));
        }
        let gone = app.plain_login(&name, PASSWORD).await;
        assert_eq!(app.logout(&gone).await.status(), StatusCode::NO_CONTENT);
        revoked.push(gone);
    }
    // A burst several times the largest batch, live and revoked mixed.
    let mut asks: Vec<(Option<String>, String)> = Vec::new();
    for round in 0..6 {
        for (i, (name, token)) in live.iter().enumerate() {
            asks.push((Some(name.clone()), token.clone()));
            if (i + round) % 3 == 0 {
                asks.push((None, revoked[i % revoked.len()].clone()));
                asks.push((None, format!("{token}x")));
            }
        }
    }
    let mut tasks = JoinSet::new();
    for (i, (_, token)) in asks.iter().enumerate() {
        let request = app.client.get(app.url("/me")).bearer_auth(token);
        tasks.spawn(async move {
            let resp = request.send().await.expect("the request is answered");
            let status = resp.status();
            let body: Value = resp.json().await.expect("a JSON body");
            (i, status, body)
        });
    }
    let mut answers = vec![None; asks.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, status, body) = done.expect("the task ends");
        answers[i] = Some((status, body));
    }
    let answers = answers
        .into_iter()
        .map(|a| a.expect("every request answered"));
    for ((expected, _), (status, body)) in asks.iter().zip(answers) {
        match expected {
            Some(name) => {
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["username"], name.as_str(), "someone else's session");
            }
            None => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
                assert_eq!(body["code"], "unauthorized");
            }
        }
    }
}
