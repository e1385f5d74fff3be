//! The command line: `twofactor serve` runs the service, `twofactor code`
//! prints the current TOTP code of a secret (as `oathtool --totp -b` does).

use clap::{Args, Parser, Subcommand};

use crate::auth::totp::{self, Algorithm, TotpParams};
use crate::config::Config;

/// Password login with TOTP two-factor authentication, as one small service.
#[derive(Parser, Debug)]
#[command(name = "twofactor", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (SQLite under ./twofactor-data/ by default).
    Serve(Box<Config>),
    /// Print the current TOTP code of a base32 secret, like `oathtool --totp -b`.
    Code(CodeArgs),
    /// Inspect and repair accounts (takes the same database flags as `serve`).
    #[command(subcommand)]
    User(crate::admin::UserCommand),
    /// Apply pending database migrations and exit (`serve` also applies them).
    Migrate(Box<Config>),
    /// Read the audit trail of security events (same database flags as `serve`).
    Audit(crate::admin::AuditArgs),
    /// Re-seal every TOTP secret under a new key in one transaction.
    RotateKey(crate::admin::RotateKeyArgs),
}

/// Arguments of `twofactor code`.
#[derive(Args, Debug)]
pub struct CodeArgs {
    /// The base32 secret (the `secret=` of a provisioning URI).
    pub secret: String,
    /// Hash algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Sha1)]
    pub algorithm: Algorithm,
    /// Code length.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=8))]
    pub digits: u32,
    /// Time step in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub period: u64,
}

impl CodeArgs {
    /// The code for `unix_time`, or an error if the secret is not base32.
    pub fn code_at(&self, unix_time: u64) -> anyhow::Result<String> {
        let key = totp::decode_secret(&self.secret)
            .map_err(|e| anyhow::anyhow!("the secret is not valid base32: {e}"))?;
        let params = TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
        };
        Ok(totp::generate(&params, &key, unix_time))
    }
}
