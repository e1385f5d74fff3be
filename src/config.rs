//! Service configuration: one clap struct, every field settable by a flag or a
//! `TWOFACTOR_*` environment variable. Built once in `main` (or by a test) and
//! handed to [`crate::startup::App::build`]; there is no global config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::totp::{Algorithm, TotpParams};

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything `twofactor serve` (and the operator commands) need to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Log line format on standard error.
    #[arg(long, env = "TWOFACTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "TWOFACTOR_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Database: `sqlite://PATH` or a bare file path (created if missing),
    /// or `postgres://USER:PASS@HOST/DB` (add `?host=/DIR` to connect through
    /// the Unix socket in DIR).
    #[arg(
        long,
        env = "TWOFACTOR_DATABASE_URL",
        default_value = "sqlite://twofactor-data/twofactor.db",
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// Most database connections this instance opens (PostgreSQL: a quarter,
    /// at least one, is kept for transactions; SQLite has one writer, and a
    /// reader for each thread that is reading).
    #[arg(long, env = "TWOFACTOR_DB_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Seconds a request waits for a database connection before it is
    /// answered 503 `unavailable` (e.g. while PostgreSQL is down).
    #[arg(long, env = "TWOFACTOR_DB_ACQUIRE_TIMEOUT", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub db_acquire_timeout: u64,

    /// File holding the 32-byte key (64 hex characters) that seals TOTP secrets
    /// at rest; created with mode 0600 when missing.
    #[arg(
        long,
        env = "TWOFACTOR_ENCRYPTION_KEY_FILE",
        default_value = "twofactor-data/encryption.key"
    )]
    pub encryption_key_file: PathBuf,

    /// The sealing key itself as 64 hex characters; takes precedence over the
    /// key file. Prefer the file: environment variables leak into process listings.
    #[arg(long, env = "TWOFACTOR_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<SecretString>,

    /// Files of more keys (as `--encryption-key-file`, but never created)
    /// that open TOTP secrets and never seal new ones: the key coming in, or
    /// going out, during a key rotation (README, "Rotating the key"). Repeat
    /// the flag, or separate with commas in the variable.
    #[arg(
        long = "decryption-key-file",
        env = "TWOFACTOR_DECRYPTION_KEY_FILES",
        value_delimiter = ','
    )]
    pub decryption_key_files: Vec<PathBuf>,

    /// Issuer shown in authenticator apps (the provisioning URI's label prefix).
    #[arg(long, env = "TWOFACTOR_ISSUER", default_value = "twofactor")]
    pub issuer: String,

    /// TOTP hash algorithm for new enrollments.
    #[arg(long, env = "TWOFACTOR_TOTP_ALGORITHM", value_enum, default_value_t = Algorithm::Sha1)]
    pub totp_algorithm: Algorithm,

    /// TOTP code length for new enrollments (6 to 8).
    #[arg(long, env = "TWOFACTOR_TOTP_DIGITS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(6..=8))]
    pub totp_digits: u32,

    /// TOTP time step in seconds for new enrollments.
    #[arg(long, env = "TWOFACTOR_TOTP_PERIOD", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub totp_period: u64,

    /// How many time steps before and after now a code may come from.
    #[arg(long, env = "TWOFACTOR_TOTP_SKEW", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=10))]
    pub totp_skew: u64,

    /// Largest clock drift, in time steps, remembered per device: the
    /// acceptance window is widened towards a device's observed offset (as
    /// django-otp does), never by more than this many steps.
    #[arg(long, env = "TWOFACTOR_TOTP_MAX_DRIFT", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=10))]
    pub totp_max_drift: u64,

    /// Consecutive failures (per account and factor) before attempts are refused.
    #[arg(long, env = "TWOFACTOR_LOCKOUT_THRESHOLD", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub lockout_threshold: u32,

    /// First lockout delay in seconds; doubles with each further failure.
    #[arg(long, env = "TWOFACTOR_LOCKOUT_BASE_DELAY", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lockout_base_delay: u64,

    /// Upper bound of the lockout delay in seconds.
    #[arg(long, env = "TWOFACTOR_LOCKOUT_MAX_DELAY", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub lockout_max_delay: u64,

    /// Lifetime of a session (bearer) token in seconds.
    #[arg(long, env = "TWOFACTOR_SESSION_TTL", default_value_t = 43_200,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub session_ttl: u64,

    /// Lifetime of the `mfa_token` between /login and /login-2fa, in seconds.
    #[arg(long, env = "TWOFACTOR_MFA_TOKEN_TTL", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(30..=3600))]
    pub mfa_token_ttl: u64,

    /// Argon2id memory cost in KiB for new password hashes (OWASP: 19456).
    #[arg(long, env = "TWOFACTOR_ARGON2_MEMORY_KIB", default_value_t = 19_456,
          value_parser = clap::value_parser!(u32).range(8..=4_194_304))]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations (time cost) for new password hashes.
    #[arg(long, env = "TWOFACTOR_ARGON2_ITERATIONS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub argon2_iterations: u32,

    /// Argon2id lanes (parallelism) for new password hashes.
    #[arg(long, env = "TWOFACTOR_ARGON2_PARALLELISM", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub argon2_parallelism: u32,

    /// Password hashes computed at once; defaults to the number of cores.
    #[arg(long, env = "TWOFACTOR_HASH_WORKERS",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub hash_workers: Option<u32>,

    /// Password-hash requests allowed to wait for a worker; beyond that the
    /// service answers 503 `busy` with `Retry-After`.
    #[arg(long, env = "TWOFACTOR_HASH_QUEUE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub hash_queue: u32,

    /// Reverse proxies (an address or a CIDR range such as `10.0.0.0/8`;
    /// repeat the flag, or separate with commas in the variable) whose
    /// `X-Forwarded-For` names the client recorded in the audit trail and
    /// the session list. None by default: the TCP peer is the client and the
    /// header is ignored, so a client cannot forge its address.
    #[arg(long = "trusted-proxy", env = "TWOFACTOR_TRUSTED_PROXIES",
          value_delimiter = ',', value_parser = crate::http::forwarded::parse_trusted_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Config {
    /// The sealer of TOTP secrets: the encryption key (loaded, or created
    /// when its file is missing) and the decryption keys.
    pub fn sealer(&self) -> anyhow::Result<crate::auth::crypto::Sealer> {
        crate::auth::crypto::Sealer::load(self.encryption_key.as_ref(), &self.encryption_key_file)?
            .also_opening_files(&self.decryption_key_files)
    }

    /// TOTP parameters given to new enrollments.
    pub fn totp_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.totp_algorithm,
            digits: self.totp_digits,
            period: self.totp_period,
        }
    }

    /// Database pool settings.
    pub fn pool_settings(&self) -> crate::db::PoolSettings {
        crate::db::PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout),
        }
    }

    /// The lockout policy these settings describe.
    pub fn lockout_policy(&self) -> crate::auth::lockout::Policy {
        crate::auth::lockout::Policy {
            threshold: self.lockout_threshold,
            base_delay: Duration::from_secs(self.lockout_base_delay),
            max_delay: Duration::from_secs(self.lockout_max_delay),
        }
    }
}

/// Stand-alone parser for [`Config`], for tests and tools that build a config
/// from argument lists rather than from `twofactor serve`.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct Standalone {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Parses flags (without a program name) into a config; environment
    /// variables fill in what the flags leave out, as for `twofactor serve`.
    pub fn try_parse_from<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Standalone as clap::Parser>::try_parse_from(args).map(|s| s.config)
    }
}
