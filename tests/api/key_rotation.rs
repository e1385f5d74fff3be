//! Rotating the key that seals TOTP secrets across running instances with no
//! failed login (README, "Rotating the key"): every instance first learns
//! the new key as a decryption key, then seals under it with the old one as
//! a decryption key, then `rotate-key` re-seals what is left, and the old
//! key goes.

use std::path::PathBuf;

use twofactor::config::Config;
use twofactor::startup::App;

use super::cli::op_with_key;
use super::helpers::{PASSWORD, TestApp, spawn_app};

/// A 30-second step later, a login with that step's code (each login of an
/// account needs a step its device has not used).
async fn log_in(app: &TestApp, name: &str, secret: &[u8]) {
    app.advance(30);
    app.full_login(name, PASSWORD, secret).await;
}

#[tokio::test]
async fn a_rolling_key_rotation_fails_no_login_and_ends_with_the_old_key_unneeded() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let alice = app.signup_mfa("alice", PASSWORD).await.secret;
    app.full_login("alice", PASSWORD, &alice).await;
    let old_key = app.config.encryption_key_file.clone();
    let new_key: PathBuf = app.dir.path().join("new.key");
    std::fs::write(&new_key, "5a".repeat(32)).unwrap();

    // 1. Every instance learns the new key, still sealing under the old.
    app.config.decryption_key_files = vec![new_key.clone()];
    app.restart().await;
    log_in(&app, "alice", &alice).await;
    // An instance not restarted again until the rotation's end.
    let behind = app.spawn_peer().await;

    // 2. Every instance seals under the new key, the old one opening what
    //    it sealed; the instance still at step 1 opens what they seal.
    app.config.encryption_key_file = new_key.clone();
    app.config.decryption_key_files = vec![old_key.clone()];
    app.restart().await;
    log_in(&app, "alice", &alice).await;
    let bob = app.signup_mfa("bob", PASSWORD).await.secret;
    log_in(&behind, "bob", &bob).await;
    log_in(&behind, "alice", &alice).await;

    // 3. What is left under the old key is sealed again under the new one
    //    (bob's secret, already under it, too).
    let new_key_arg = new_key.display().to_string();
    let run = op_with_key(
        &app,
        &old_key,
        &["rotate-key", "--new-key-file", &new_key_arg],
    )
    .await;
    run.success();
    assert!(
        run.stdout.contains("re-sealed 2 secret(s)"),
        "{}",
        run.stdout
    );
    log_in(&behind, "alice", &alice).await;
    log_in(&app, "bob", &bob).await;

    // 4. The old key goes.
    drop(behind);
    std::fs::remove_file(&old_key).unwrap();
    app.config.decryption_key_files.clear();
    app.restart().await;
    log_in(&app, "alice", &alice).await;
    log_in(&app, "bob", &bob).await;
    assert!(!old_key.exists(), "nothing recreated the old key file");
}

#[tokio::test]
async fn a_missing_decryption_key_file_stops_the_service_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let db = format!("sqlite://{}", path("db.sqlite"));
    let (key, missing) = (path("encryption.key"), path("missing.key"));
    let config = Config::try_parse_from([
        "--bind",
        "127.0.0.1:0",
        "--database-url",
        &db,
        "--encryption-key-file",
        &key,
        "--decryption-key-file",
        &missing,
    ])
    .unwrap();
    let err = App::build(config)
        .await
        .err()
        .expect("the service refuses to start");
    assert!(
        format!("{err:#}").contains("decryption key file"),
        "{err:#}"
    );
    assert!(!dir.path().join("missing.key").exists(), "not created");
}
