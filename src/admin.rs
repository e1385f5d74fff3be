//! Operator commands run by the same binary with the same configuration as
//! `serve`: inspect and repair accounts, apply migrations, rotate the key.

use std::path::PathBuf;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::auth::crypto::{self, Sealer};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{self, Db, admin};
use crate::domain::Username;

/// Prints a line; a closed pipe (`twofactor user list | head`) ends the
/// output quietly instead of panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `twofactor user …`
#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// List every account: MFA state, recovery codes left, live sessions.
    List(ListArgs),
    /// Show one account.
    Show(UserArgs),
    /// Remove a user's authenticator and recovery codes (the lost-phone
    /// path): they log in with the password alone and can enroll again.
    ResetMfa(UserArgs),
    /// Clear a user's password and second-factor lockouts.
    Unlock(UserArgs),
    /// Delete an account with its authenticator, codes and sessions.
    Delete(UserArgs),
}

/// Arguments of `user list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    config: Box<Config>,
}

/// Arguments of the commands about one user.
#[derive(clap::Args, Debug)]
pub struct UserArgs {
    /// The username (case-insensitive).
    pub name: String,
    /// Print JSON instead of text (`show` only).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    config: Box<Config>,
}

/// Arguments of `audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Only events about this username (case-insensitive).
    #[arg(long)]
    pub user: Option<String>,
    /// Only events since then: Unix seconds, or an age such as `15m`, `2h`, `7d`.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    config: Box<Config>,
}

/// Arguments of `rotate-key`.
#[derive(clap::Args, Debug)]
pub struct RotateKeyArgs {
    /// File of the new key (64 hex characters); created with a fresh random
    /// key, mode 0600, if missing. Point `--encryption-key-file` at it afterwards.
    #[arg(long)]
    pub new_key_file: PathBuf,
    #[command(flatten)]
    config: Box<Config>,
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    Db::connect(config.database_url.expose_secret(), config.pool_settings()).await
}

fn username(name: &str) -> anyhow::Result<Username> {
    Username::parse(name).context("not a valid username")
}

/// Records an operator action in the audit trail.
async fn record<'e>(
    ex: impl db::sql::Executor<'e>,
    username: Option<&str>,
    user_id: Option<i64>,
    event: &'static str,
) -> anyhow::Result<()> {
    db::audit::insert(
        ex,
        &db::audit::NewEvent {
            at: Clock::system().now(),
            username,
            user_id,
            event,
            detail: None,
            client_addr: None,
            user_agent: Some("twofactor-cli"),
        },
    )
    .await
    .context("recording the action in the audit trail")
}

/// Unix seconds of `--since`: a Unix time, or an age before `now`.
fn parse_since(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(at) = text.parse::<i64>() {
        return Ok(at);
    }
    let age = humantime::parse_duration(text).with_context(|| {
        format!("--since takes Unix seconds or an age like 15m, 2h, 7d, not {text:?}")
    })?;
    Ok(now - i64::try_from(age.as_secs()).unwrap_or(i64::MAX / 2))
}

/// `twofactor audit`: reads the audit trail.
pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let now = Clock::system().now();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    let user = args.user.as_deref().map(username).transpose()?;
    let db = open(&args.config).await?;
    let events = db::audit::search(
        db.reader(),
        user.as_ref().map(|u| u.key()),
        since.unwrap_or(i64::MIN),
        args.limit,
    )
    .await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    for e in &events {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.at.max(0) as u64);
        say!(
            "{}  {:<24} {:<22} {:<28} {:<22} {}",
            humantime::format_rfc3339_seconds(at),
            e.username.as_deref().unwrap_or("-"),
            e.event,
            e.detail.as_deref().unwrap_or("-"),
            e.client_addr.as_deref().unwrap_or("-"),
            e.user_agent.as_deref().unwrap_or("-"),
        );
    }
    say!("{} event(s)", events.len());
    Ok(())
}

/// Runs a `user` subcommand.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    let now = Clock::system().now();
    match command {
        UserCommand::List(args) => {
            let db = open(&args.config).await?;
            let accounts = admin::list(db.reader(), now).await?;
            if args.json {
                say!("{}", serde_json::to_string_pretty(&accounts)?);
                return Ok(());
            }
            say!(
                "{:<32} {:<8} {:>9} {:>9}  CREATED",
                "USERNAME",
                "MFA",
                "RECOVERY",
                "SESSIONS"
            );
            for a in &accounts {
                say!(
                    "{:<32} {:<8} {:>9} {:>9}  {}",
                    a.username,
                    a.mfa,
                    a.recovery_codes_left,
                    a.active_sessions,
                    a.created_at
                );
            }
            say!("{} account(s)", accounts.len());
        }
        UserCommand::Show(args) => {
            let db = open(&args.config).await?;
            let name = username(&args.name)?;
            let Some(a) = admin::show(db.reader(), name.key(), now).await? else {
                bail!("no user named {}", name.as_str());
            };
            let locks = [
                crate::auth::lockout::Factor::Password,
                crate::auth::lockout::Factor::SecondFactor,
            ];
            let mut states = Vec::new();
            for factor in locks {
                let s = db::throttle::get(db.reader(), name.key(), factor).await?;
                states.push((factor.as_str(), s.failures, (s.locked_until - now).max(0)));
            }
            if args.json {
                let lockouts: Vec<_> = states
                    .iter()
                    .map(|(f, n, secs)| serde_json::json!({"factor": f, "failures": n, "locked_for_seconds": secs}))
                    .collect();
                let mut value = serde_json::to_value(&a)?;
                value["lockouts"] = lockouts.into();
                say!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            say!("username:            {}", a.username);
            say!("created_at:          {}", a.created_at);
            say!("mfa:                 {}", a.mfa);
            say!("recovery_codes_left: {}", a.recovery_codes_left);
            say!("active_sessions:     {}", a.active_sessions);
            for (factor, failures, secs) in states {
                say!("{factor:<20} {failures} consecutive failure(s), locked for {secs} s");
            }
        }
        UserCommand::ResetMfa(args) => {
            let db = open(&args.config).await?;
            let name = username(&args.name)?;
            let mut tx = db.begin_write().await?;
            let Some(user) = db::users::find_by_key(&mut *tx, name.key()).await? else {
                bail!("no user named {}", name.as_str());
            };
            let had = db::credentials::delete_for_user(&mut tx, user.id).await?;
            db::recovery_codes::delete_for_user(&mut tx, user.id).await?;
            db::throttle::reset(
                &mut *tx,
                name.key(),
                crate::auth::lockout::Factor::SecondFactor,
            )
            .await?;
            record(
                &mut *tx,
                Some(name.key()),
                Some(user.id),
                "operator.reset_mfa",
            )
            .await?;
            tx.commit().await?;
            match had {
                true => say!(
                    "MFA removed for {}; they can log in with their password and enroll again",
                    user.username
                ),
                false => say!("{} had no MFA; nothing changed", user.username),
            }
        }
        UserCommand::Unlock(args) => {
            let db = open(&args.config).await?;
            let name = username(&args.name)?;
            let mut tx = db.begin_write().await?;
            let cleared = admin::unlock(&mut *tx, name.key()).await?;
            // Counters also exist for names without an account (guessed
            // usernames lock out too); only a name with neither is an error.
            if cleared == 0 && admin::show(&mut *tx, name.key(), now).await?.is_none() {
                bail!("no user named {}", name.as_str());
            }
            let account = db::users::find_by_key(&mut *tx, name.key()).await?;
            let user_id = account.map(|u| u.id);
            record(&mut *tx, Some(name.key()), user_id, "operator.unlock").await?;
            tx.commit().await?;
            say!("cleared {cleared} lockout counter(s) for {}", name.as_str());
        }
        UserCommand::Delete(args) => {
            let db = open(&args.config).await?;
            let name = username(&args.name)?;
            let mut tx = db.begin_write().await?;
            let account = db::users::find_by_key(&mut *tx, name.key()).await?;
            if !admin::delete_user(&mut tx, name.key()).await? {
                bail!("no user named {}", name.as_str());
            }
            let user_id = account.map(|u| u.id);
            record(&mut *tx, Some(name.key()), user_id, "operator.delete").await?;
            admin::unlock(&mut *tx, name.key()).await?;
            tx.commit().await?;
            say!("deleted {}", name.as_str());
        }
    }
    Ok(())
}

/// `twofactor migrate`: applies pending migrations and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    open(config).await?;
    say!("database is up to date");
    Ok(())
}

/// `twofactor rotate-key`: re-seals every TOTP secret under the new key in
/// one transaction. A secret opens under the current key, a decryption key
/// (`--decryption-key-file`) or the new key itself (sealed by an instance
/// already running with it, in a rolling rotation); if any opens under
/// none, nothing changes.
pub async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let config = &args.config;
    if config.encryption_key.is_none() && config.encryption_key_file == args.new_key_file {
        bail!("--new-key-file must differ from --encryption-key-file");
    }
    let new_key = Zeroizing::new(crypto::load_or_create_key_file(&args.new_key_file)?);
    let new = Sealer::new(&new_key);
    let old = config.sealer()?.also_opening(&new_key);
    let db = open(config).await?;
    let mut tx = db.begin_write().await?;
    let secrets = admin::sealed_secrets(&mut tx).await?;
    for (id, user_id, sealed) in &secrets {
        let plain = old
            .open(*user_id, &sealed.nonce, &sealed.ciphertext)
            .with_context(|| {
                format!("credential {id} does not open under the current key, a decryption key or the new key; nothing changed")
            })?;
        admin::reseal(&mut tx, *id, &new.seal(*user_id, &plain)).await?;
    }
    record(&mut *tx, None, None, "operator.rotate_key").await?;
    tx.commit().await?;
    say!(
        "re-sealed {} secret(s) under {}; restart every instance with --encryption-key-file {}",
        secrets.len(),
        args.new_key_file.display(),
        args.new_key_file.display()
    );
    Ok(())
}
