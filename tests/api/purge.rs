//! The clean-up of expired sessions and `mfa_token`s (migration 0007: no
//! index on their expiry; the expired ones are found through the keys'
//! issue time, and tokens of the older layout through an index of their
//! own), run directly on the test database beside the server.

use reqwest::StatusCode;
use twofactor::db::sql::query;
use twofactor::db::{Db, challenges, sessions, users};

use super::backend::{self, Backend};
use super::helpers::{PASSWORD, TestApp, open_db, spawn_app};

/// Runs the clean-up's two token purges at the app's "now"; rows deleted.
async fn purge(app: &TestApp, db: &Db) -> (u64, u64) {
    let now = app.clock.now();
    let mut tx = db.begin_write().await.unwrap();
    let gone_sessions = sessions::purge_expired(&mut *tx, now).await.unwrap();
    let gone_challenges = challenges::purge_expired(&mut *tx, now).await.unwrap();
    tx.commit().await.unwrap();
    (gone_sessions, gone_challenges)
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    query(sql)
        .fetch_one(db.reader())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// A bearer token of `username` (an MFA account), through both steps.
async fn sign_in(app: &TestApp, username: &str, secret: &[u8]) -> String {
    let mfa_token = app.mfa_token(username, PASSWORD).await;
    let resp = app
        .login_2fa(username, &app.code_now(secret), &mfa_token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn expired_sessions_and_mfa_tokens_are_purged_and_live_ones_are_kept() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    let alice = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let first = sign_in(&app, "alice", &alice.secret).await;
    let _pending = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(purge(&app, &db).await, (0, 0), "nothing has expired yet");

    // Past the mfa_token's lifetime, within the session's.
    app.advance(app.config.mfa_token_ttl + 1);
    assert_eq!(purge(&app, &db).await, (0, 1), "the unspent mfa_token");
    assert_eq!(count(&db, "SELECT count(*) FROM mfa_challenges").await, 0);
    assert_eq!(app.me(&first).await.status(), StatusCode::OK);

    // Past the first session's lifetime; a second one is issued after it.
    app.advance(app.config.session_ttl);
    app.align_to_step_start();
    let second = sign_in(&app, "alice", &alice.secret).await;
    assert_eq!(purge(&app, &db).await, (1, 0), "the first session");
    assert_eq!(count(&db, "SELECT count(*) FROM sessions").await, 1);
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
    assert_eq!(app.me(&first).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_tokens_of_the_older_layout_are_purged_too() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    app.signup_mfa("bob", PASSWORD).await;
    let bob = users::find_by_key(db.reader(), "bob")
        .await
        .unwrap()
        .expect("bob exists")
        .id;
    let now = app.clock.now();
    // Keys of that layout: a bare SHA-256, 32 bytes, anywhere in key order.
    let mut tx = db.begin_write().await.unwrap();
    for (key, expires_at) in [([0xff; 32], now - 1), ([0x01; 32], now + 600)] {
        query(
            "INSERT INTO sessions (token_hash, public_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.as_slice())
        .bind(if expires_at < now {
            "old-expired"
        } else {
            "old-alive"
        })
        .bind(bob)
        .bind(now - 10)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .unwrap();
        query(
            "INSERT INTO mfa_challenges (token_hash, user_id, username_key, expires_at) \
             VALUES ($1, $2, 'bob', $3)",
        )
        .bind(key.as_slice())
        .bind(bob)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // A live token of the current layout, which sorts before them all.
    let _pending = app.mfa_token("bob", PASSWORD).await;

    assert_eq!(purge(&app, &db).await, (1, 1), "the expired old ones");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sessions WHERE public_id = 'old-alive'"
        )
        .await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM mfa_challenges").await, 2);
}

/// On PostgreSQL sessions have no foreign key to users (migration 0009), so
/// an account deleted while one of its logins was storing a session can
/// leave that session behind; on SQLite the key's cascade takes it. Either
/// way it must grant nothing, and the purge must take it once it expires.
#[tokio::test]
async fn a_session_whose_account_is_gone_grants_nothing_and_is_purged_when_it_expires() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    app.signup_plain("carol", PASSWORD).await;
    let token = app.plain_login("carol", PASSWORD).await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    let carol = users::find_by_key(db.reader(), "carol")
        .await
        .unwrap()
        .expect("carol exists")
        .id;

    // The account's row alone, as a deletion that ran before the login's
    // session was committed would leave it.
    let mut tx = db.begin_write().await.unwrap();
    query("DELETE FROM users WHERE id = $1")
        .bind(carol)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let left = match backend::current() {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
    };
    assert_eq!(count(&db, "SELECT count(*) FROM sessions").await, left);
    assert_eq!(app.me(&token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.logout(&token).await.status(), StatusCode::UNAUTHORIZED);

    app.advance(app.config.session_ttl + 1);
    purge(&app, &db).await;
    assert_eq!(count(&db, "SELECT count(*) FROM sessions").await, 0);
}
