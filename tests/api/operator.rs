//! The operator commands (`twofactor user …`, `migrate`, `rotate-key`), run
//! as real processes of the binary with the same `--database-url` and
//! `--encryption-key-file` as a running server, whose HTTP API then shows
//! their effect.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cli::{op, op_with_key, twofactor};
use super::helpers::{
    Enrollment, PASSWORD, TestApp, assert_error, assert_locked, assert_ok_json, spawn_app,
    wrong_code,
};

/// The key file the server currently runs with.
fn key_file(app: &TestApp) -> PathBuf {
    app.config.encryption_key_file.clone()
}

/// `user list --json`: every account, by username.
async fn accounts(app: &TestApp) -> Vec<Value> {
    let run = op(app, &["user", "list", "--json"]).await;
    run.success();
    run.json().as_array().expect("a JSON array").clone()
}

/// `user show NAME --json`.
async fn show(app: &TestApp, name: &str) -> Value {
    let run = op(app, &["user", "show", name, "--json"]).await;
    run.success();
    run.json()
}

/// The `lockouts` entry of `factor` in a `show --json` answer.
fn lockout<'a>(shown: &'a Value, factor: &str) -> &'a Value {
    shown["lockouts"]
        .as_array()
        .unwrap_or_else(|| panic!("no lockouts in {shown}"))
        .iter()
        .find(|l| l["factor"] == factor)
        .unwrap_or_else(|| panic!("no {factor} lockout in {shown}"))
}

/// Password + TOTP code `offset` steps from now; asserts 200.
async fn login_with_code(app: &TestApp, name: &str, secret: &[u8], offset: i64) {
    let mfa = app.mfa_token(name, PASSWORD).await;
    let code = app.code_at_step_offset(secret, offset);
    assert_ok_json(app.login_2fa(name, &code, &mfa).await).await;
}

/// `n` logins with `password`, each answered 401 invalid_credentials.
async fn fail_logins(app: &TestApp, name: &str, password: &str, n: usize) {
    for _ in 0..n {
        let resp = app.login(name, password).await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
}

/// `n` wrong codes on /login-2fa, each answered 401 invalid_otp.
async fn fail_codes(app: &TestApp, name: &str, mfa: &str, secret: &[u8], n: usize) {
    for _ in 0..n {
        let resp = app.login_2fa(name, &wrong_code(app, secret), mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
}

/// Writes a valid key (64 hex characters) that is not the server's to `path`.
fn write_other_key(path: &Path) {
    std::fs::write(path, "5a".repeat(32)).expect("write key file");
}

#[tokio::test]
async fn user_list_shows_each_accounts_mfa_state_recovery_codes_and_sessions() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("plain.user", PASSWORD).await;
    app.signup_mfa("pending.user", PASSWORD).await;
    let on = app.signup_mfa("On.User", PASSWORD).await;
    app.full_login("On.User", PASSWORD, &on.secret).await;
    let mfa = app.mfa_token("on.user", PASSWORD).await;
    assert_ok_json(app.login_2fa("on.user", &on.recovery_codes[0], &mfa).await).await;

    let list = accounts(&app).await;
    let names: Vec<&str> = list
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["On.User", "pending.user", "plain.user"],
        "{list:#?}"
    );
    let expect = [("on", 9, 2), ("pending", 10, 0), ("off", 0, 0)];
    for (account, (mfa, codes, sessions)) in list.iter().zip(expect) {
        assert_eq!(account["mfa"], mfa, "{account}");
        assert_eq!(account["recovery_codes_left"], codes, "{account}");
        assert_eq!(account["active_sessions"], sessions, "{account}");
        assert!(
            account["created_at"].as_i64().unwrap() > 1_600_000_000,
            "{account}"
        );
    }

    let run = op(&app, &["user", "list"]).await;
    run.success();
    for name in names {
        assert!(
            run.stdout.contains(name),
            "table lists {name}: {}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("3 account(s)"), "{}", run.stdout);
}

#[tokio::test]
async fn user_show_reports_lockout_counters_after_failed_logins() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("Carol", PASSWORD).await;
    fail_logins(&app, "carol", "wrong password!", 3).await;
    let shown = show(&app, "CAROL").await;
    assert_eq!(shown["username"], "Carol", "{shown}");
    assert_eq!(shown["mfa"], "off", "{shown}");
    assert_eq!(lockout(&shown, "password")["failures"], 3, "{shown}");
    assert_eq!(
        lockout(&shown, "password")["locked_for_seconds"],
        0,
        "{shown}"
    );
    assert_eq!(lockout(&shown, "second_factor")["failures"], 0, "{shown}");

    fail_logins(&app, "carol", "wrong password!", 2).await;
    assert_locked(app.login("carol", PASSWORD).await, 30).await;
    let shown = show(&app, "carol").await;
    assert_eq!(lockout(&shown, "password")["failures"], 5, "{shown}");
    let locked = lockout(&shown, "password")["locked_for_seconds"]
        .as_i64()
        .unwrap();
    assert!((1..=30).contains(&locked), "locked for {locked} s: {shown}");

    // Second-factor failures are counted apart.
    let dave = app.signup_mfa("dave", PASSWORD).await;
    let mfa = app.mfa_token("dave", PASSWORD).await;
    fail_codes(&app, "dave", &mfa, &dave.secret, 2).await;
    let shown = show(&app, "dave").await;
    assert_eq!(shown["mfa"], "pending", "{shown}");
    assert_eq!(lockout(&shown, "second_factor")["failures"], 2, "{shown}");
    assert_eq!(lockout(&shown, "password")["failures"], 0, "{shown}");

    let run = op(&app, &["user", "show", "carol"]).await;
    run.success();
    assert!(
        run.stdout.contains("5 consecutive failure(s)"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn user_unlock_clears_a_lockout_so_the_next_login_works_at_once() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("erin", PASSWORD).await;
    fail_logins(&app, "erin", "wrong password!", 5).await;
    assert_locked(app.login("erin", PASSWORD).await, 30).await;
    let run = op(&app, &["user", "unlock", "Erin"]).await;
    run.success();
    assert!(run.stdout.contains("cleared"), "{}", run.stdout);
    app.plain_login("erin", PASSWORD).await;

    // The second-factor lockout too.
    let enrolled = app.signup_mfa("frank", PASSWORD).await;
    let mfa = app.mfa_token("frank", PASSWORD).await;
    fail_codes(&app, "frank", &mfa, &enrolled.secret, 5).await;
    let code = app.code_now(&enrolled.secret);
    assert_locked(app.login_2fa("frank", &code, &mfa).await, 30).await;
    op(&app, &["user", "unlock", "frank"]).await.success();
    assert_ok_json(app.login_2fa("frank", &code, &mfa).await).await;
    let shown = show(&app, "frank").await;
    assert_eq!(lockout(&shown, "second_factor")["failures"], 0, "{shown}");

    // A guessed name without an account locks out too, and can be unlocked.
    fail_logins(&app, "ghost", PASSWORD, 5).await;
    assert_locked(app.login("ghost", PASSWORD).await, 30).await;
    op(&app, &["user", "unlock", "ghost"]).await.success();
    assert_error(
        app.login("ghost", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_reset_mfa_lets_the_user_log_in_with_the_password_alone_and_enroll_again() {
    let Some(app) = spawn_app().await else { return };
    let old = app.signup_mfa("grace", PASSWORD).await;
    app.full_login("grace", PASSWORD, &old.secret).await;
    assert_eq!(show(&app, "grace").await["mfa"], "on");

    let run = op(&app, &["user", "reset-mfa", "Grace"]).await;
    run.success();
    assert!(run.stdout.contains("MFA removed"), "{}", run.stdout);

    app.plain_login("grace", PASSWORD).await;
    assert_error(
        app.qrcode("grace", PASSWORD, None).await,
        409,
        "mfa_disabled",
    )
    .await;
    let shown = show(&app, "grace").await;
    assert_eq!(shown["mfa"], "off", "{shown}");
    assert_eq!(shown["recovery_codes_left"], 0, "{shown}");

    // A second reset changes nothing and says so.
    let run = op(&app, &["user", "reset-mfa", "grace"]).await;
    run.success();
    assert!(run.stdout.contains("nothing changed"), "{}", run.stdout);

    // Enroll again: a new secret, and the old one no longer works.
    let body = assert_ok_json(app.enable_mfa("grace", PASSWORD).await).await;
    let new: Enrollment = super::helpers::enrollment_from(&body);
    assert_ne!(new.secret, old.secret);
    let mfa = app.mfa_token("grace", PASSWORD).await;
    let stale = app.code_now(&old.secret);
    if stale != app.code_now(&new.secret) {
        assert_error(
            app.login_2fa("grace", &stale, &mfa).await,
            401,
            "invalid_otp",
        )
        .await;
    }
    app.full_login("grace", PASSWORD, &new.secret).await;
}

#[tokio::test]
async fn user_delete_removes_the_account_and_its_sessions_and_frees_the_name() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("heidi", PASSWORD).await;
    let session = app.plain_login("heidi", PASSWORD).await;
    let ivan = app.signup_mfa("ivan", PASSWORD).await;
    let ivan_session = app.full_login("ivan", PASSWORD, &ivan.secret).await;

    for name in ["HEIDI", "ivan"] {
        let run = op(&app, &["user", "delete", name]).await;
        run.success();
        assert!(run.stdout.contains("deleted"), "{}", run.stdout);
    }
    for (name, token) in [("heidi", &session), ("ivan", &ivan_session)] {
        assert_error(app.me(token).await, 401, "unauthorized").await;
        assert_error(app.login(name, PASSWORD).await, 401, "invalid_credentials").await;
    }
    assert!(accounts(&app).await.is_empty());

    // The names are free again, for fresh accounts.
    app.signup_plain("heidi", "another password").await;
    app.plain_login("heidi", "another password").await;
    let again = app.signup_mfa("ivan", PASSWORD).await;
    assert_ne!(again.secret, ivan.secret);
    assert_eq!(show(&app, "ivan").await["mfa"], "pending");
}

#[tokio::test]
async fn migrate_on_an_up_to_date_database_exits_0() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("judy", PASSWORD).await;
    for _ in 0..2 {
        let run = op(&app, &["migrate"]).await;
        run.success();
        assert!(run.stdout.contains("up to date"), "{}", run.stdout);
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.plain_login("judy", PASSWORD).await;
}

#[tokio::test]
async fn rotate_key_reseals_every_secret_so_the_old_key_is_no_longer_needed() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let names = ["kim", "leo", "mia"];
    let mut secrets = Vec::new();
    for name in names {
        secrets.push(app.signup_mfa(name, PASSWORD).await.secret);
    }
    app.full_login("kim", PASSWORD, &secrets[0]).await; // kim: on; the others pending
    app.signup_plain("nina", PASSWORD).await;

    let old_key = key_file(&app);
    let new_key = app.dir.path().join("rotated").join("new.key");
    std::fs::create_dir(new_key.parent().unwrap()).unwrap();
    let new_key_arg = new_key.display().to_string();
    let run = op(&app, &["rotate-key", "--new-key-file", &new_key_arg]).await;
    run.success();
    assert!(
        run.stdout.contains("re-sealed 3 secret(s)"),
        "{}",
        run.stdout
    );

    let mode = std::fs::metadata(&new_key)
        .expect("new key file created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "new key file mode {:o}", mode & 0o777);
    let new_hex = std::fs::read_to_string(&new_key).unwrap();
    let old_hex = std::fs::read_to_string(&old_key).unwrap();
    assert_eq!(new_hex.trim().len(), 64, "{new_hex:?}");
    assert!(new_hex.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(new_hex.trim(), old_hex.trim(), "a new key");

    // Only the new key from now on.
    std::fs::remove_file(&old_key).unwrap();
    app.config.encryption_key_file = new_key.clone();
    app.restart().await;
    // kim used this step's code already: one step ahead is still in the window.
    login_with_code(&app, "kim", &secrets[0], 1).await;
    for (name, secret) in names.iter().zip(&secrets).skip(1) {
        login_with_code(&app, name, secret, 0).await;
    }
    assert!(!old_key.exists(), "nothing recreated the old key file");
    // New enrollments are sealed under the new key.
    let body = assert_ok_json(app.enable_mfa("nina", PASSWORD).await).await;
    let nina = super::helpers::enrollment_from(&body);
    app.full_login("nina", PASSWORD, &nina.secret).await;
}

#[tokio::test]
async fn rotate_key_with_the_wrong_current_key_fails_and_changes_nothing() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    let names = ["olga", "paul"];
    let mut secrets = Vec::new();
    for name in names {
        secrets.push(app.signup_mfa(name, PASSWORD).await.secret);
    }
    let wrong_key = app.dir.path().join("wrong.key");
    write_other_key(&wrong_key);
    let new_key = app.dir.path().join("new.key").display().to_string();
    let run = op_with_key(
        &app,
        &wrong_key,
        &["rotate-key", "--new-key-file", &new_key],
    )
    .await;
    run.failure("does not open under the current key");
    run.failure("nothing changed");

    // The new key file may not be the current one.
    let current = key_file(&app).display().to_string();
    op(&app, &["rotate-key", "--new-key-file", &current])
        .await
        .failure("must differ");

    // Still sealed under the original key, also after a restart.
    app.restart().await;
    for (name, secret) in names.iter().zip(&secrets) {
        login_with_code(&app, name, secret, 0).await;
    }
}

#[tokio::test]
async fn user_commands_on_an_unknown_user_fail_with_a_clear_message() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("quinn", PASSWORD).await;
    for command in ["show", "reset-mfa", "delete"] {
        op(&app, &["user", command, "nobody-here"])
            .await
            .failure("no user named nobody-here");
    }
    op(&app, &["user", "show", "not a valid name!"])
        .await
        .failure("not a valid username");
    // Nothing happened to the one real account.
    assert_eq!(accounts(&app).await.len(), 1);
    app.plain_login("quinn", PASSWORD).await;
    // Last, so that it cannot hide the checks above: `unlock` of a name
    // nobody has must fail like the others rather than report success.
    op(&app, &["user", "unlock", "nobody-here"])
        .await
        .failure("no user named nobody-here");
}

#[tokio::test]
async fn every_operator_commands_help_exits_0_and_describes_it() {
    let cases: [(&[&str], &str); 8] = [
        (&["user"], "Inspect and repair accounts"),
        (&["user", "list"], "List every account"),
        (&["user", "show"], "Show one account"),
        (&["user", "reset-mfa"], "lost-phone"),
        (&["user", "unlock"], "lockouts"),
        (&["user", "delete"], "Delete an account"),
        (&["migrate"], "Apply pending database migrations"),
        (&["rotate-key"], "Re-seal every TOTP secret under a new key"),
    ];
    for (command, says) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let run = twofactor(&args).await;
        run.success();
        assert!(
            run.stdout.contains(says),
            "{args:?} should say {says:?}:\n{}",
            run.stdout
        );
        if command != ["user"] {
            assert!(
                run.stdout.contains("--database-url"),
                "{args:?}:\n{}",
                run.stdout
            );
        }
    }
    let run = twofactor(&["rotate-key", "--help"]).await;
    assert!(run.stdout.contains("--new-key-file"), "{}", run.stdout);
}
