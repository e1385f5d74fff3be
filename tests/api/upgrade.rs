//! Upgrading a database made before several devices per account existed
//! (migrations 0001–0002): the account's authenticator becomes its default
//! device and keeps working, and its sessions get public ids.

use std::path::Path;

use serde_json::Value;
use sqlx::AnyPool;
use twofactor::auth::crypto::{Sealer, fill_random};
use twofactor::auth::password::Hasher;
use twofactor::domain::Password;

use super::backend::{self, Backend};
use super::helpers::{PASSWORD, assert_error, assert_ok_json, spawn_app_on};
use super::pg;

/// Tokens of the layout before time-ordered keys (256 random bits, stored
/// by their SHA-256 alone), as an older release issued them.
struct OldTokens {
    /// A bearer token of alice's.
    session: String,
    /// An unspent `mfa_token` of alice's, as /login handed it out.
    mfa_token: String,
}

/// A token of that layout and the key it was stored under.
fn old_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    let token = data_encoding::BASE64URL_NOPAD.encode(&bytes);
    let hash = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).to_vec();
    (token, hash)
}

/// A database at migration 0002 holding alice (password, confirmed
/// authenticator with `secret`, one session, one pending MFA challenge),
/// and their tokens.
async fn old_database(url: &str, dir: &Path, secret: &[u8]) -> OldTokens {
    sqlx::any::install_default_drivers();
    let connect = match backend::current() {
        Backend::Sqlite => format!("{url}?mode=rwc"),
        Backend::Postgres => url.to_owned(),
    };
    let pool = AnyPool::connect(&connect).await.expect("connect");
    let backend = match backend::current() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut migrator = sqlx::migrate::Migrator::new(source)
        .await
        .expect("migrations");
    let old: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 2)
        .cloned()
        .collect();
    migrator.migrations = old.into();
    migrator.run(&pool).await.expect("migrations 0001-0002");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hasher = Hasher::new(64, 1, 1, 1, 4).expect("hasher");
    let hash = hasher
        .hash(&Password::parse(PASSWORD).unwrap())
        .await
        .expect("hash");
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, username_key, password_hash, created_at) \
         VALUES ('alice', 'alice', $1, $2) RETURNING id",
    )
    .bind(hash)
    .bind(now)
    .fetch_one(&pool)
    .await
    .expect("user");
    let sealer = Sealer::load(None, &dir.join("encryption.key")).expect("key");
    let sealed = sealer.seal(id, secret);
    sqlx::query(
        "INSERT INTO totp_credentials (user_id, secret_nonce, secret_sealed, algorithm, digits, \
         period, confirmed_at, created_at) VALUES ($1, $2, $3, 'SHA1', 6, 30, $4, $4)",
    )
    .bind(id)
    .bind(sealed.nonce)
    .bind(sealed.ciphertext)
    .bind(now)
    .execute(&pool)
    .await
    .expect("credential");
    let (session, hash) = old_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(id)
    .bind(now)
    .bind(now + 3600)
    .execute(&pool)
    .await
    .expect("session");
    let (mfa_token, hash) = old_token();
    sqlx::query("INSERT INTO mfa_challenges (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(hash)
        .bind(id)
        .bind(now + 300)
        .execute(&pool)
        .await
        .expect("challenge");
    pool.close().await;
    OldTokens { session, mfa_token }
}

#[tokio::test]
async fn an_account_from_before_devices_keeps_its_authenticator_and_sessions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend::current() {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        Backend::Postgres => match pg::shared() {
            Some(cluster) => cluster.create_database().await,
            None => return,
        },
    };
    let secret = b"twofactor-upgrade-01";
    let old = old_database(&url, dir.path(), secret).await;
    let token = old.session;
    let app = spawn_app_on(dir, url, &[]).await;

    let me = assert_ok_json(app.me(&token).await).await;
    assert_eq!(me["mfa_enabled"], true);
    let sessions = assert_ok_json(app.sessions(&token).await).await;
    let id = sessions["sessions"][0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{sessions}");
    assert_eq!(sessions["sessions"][0]["current"], true);
    let devices = assert_ok_json(app.devices(&token).await).await;
    let list = devices["devices"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{devices}");
    assert_eq!(list[0]["label"], "default");
    assert_eq!(list[0]["default"], true);
    assert_eq!(list[0]["status"], "active");

    // The mfa_token handed out before the upgrade still completes its
    // login, once.
    app.align_to_step_start();
    let code = app.code_now(secret);
    let body = assert_ok_json(app.login_2fa("alice", &code, &old.mfa_token).await).await;
    assert_eq!(body["message"], "Login successful");
    let spent = app
        .login_2fa("alice", &app.code_at_step_offset(secret, 1), &old.mfa_token)
        .await;
    assert_error(spent, 401, "invalid_mfa_token").await;
    app.advance(30);

    // The old secret still logs in, and a second device can now be added.
    let bearer = app.full_login("alice", PASSWORD, secret).await;
    let device = app.add_confirmed_device(&bearer, "tablet").await;
    let body: Value = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(body["devices"][1]["id"], device.id);

    // The old session can still be ended.
    assert_eq!(app.logout(&token).await.status(), 204);
    assert_eq!(app.me(&token).await.status(), 401);
}
