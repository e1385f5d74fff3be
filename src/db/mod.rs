//! All SQL lives under this module: free functions over the readers or an
//! open transaction, the same statements for SQLite and PostgreSQL (both
//! accept `$n` placeholders), run through [`sql`]: sqlx's `Any` driver for
//! PostgreSQL, rusqlite on the calling thread for SQLite. Migrations are
//! embedded and applied at start (by sqlx, for both).

pub mod admin;
pub mod audit;
pub mod batch;
pub mod challenge_reads;
pub mod challenges;
pub mod checkpoint;
pub mod credentials;
pub mod expired;
pub mod lite;
pub mod login_write;
pub mod parked;
pub mod recovery_codes;
pub mod session_reads;
pub mod sessions;
pub mod sql;
pub mod throttle;
pub mod users;
mod wal_sync;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use lite::LitePool;
use parked::StatementPool;
use sql::{Ex, Executor};
pub use writer::{BoxFuture, Conn, WriteTx};
use writer::{Group, Writer};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

impl Target {
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path select SQLite;
    /// `postgres://` and `postgresql://` select PostgreSQL; any other scheme
    /// is an error rather than a surprising file name.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() || path.starts_with(":memory:") {
                bail!("an SQLite database URL needs a file path");
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!("unsupported database URL scheme `{scheme}`: use sqlite:// or postgres://");
        }
        if url.is_empty() {
            bail!("the database URL is empty");
        }
        Ok(Target::Sqlite(PathBuf::from(url)))
    }
}

/// Connection pool limits.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    /// Most connections (PostgreSQL; SQLite opens readers as threads need them).
    pub max_connections: u32,
    /// How long a request waits for a connection.
    pub acquire_timeout: Duration,
}

/// The database: a pool for reads and a writer. On SQLite the writer is one
/// connection with group commit ([`writer`]), so write transactions queue
/// in-process instead of failing with SQLITE_BUSY and share their fsyncs;
/// on PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    read: Reader,
    write: Writer,
    /// Batched session lookups (PostgreSQL).
    session_reads: Option<session_reads::SessionReads>,
    /// Batched /login-2fa reads (PostgreSQL).
    challenge_reads: Option<challenge_reads::ChallengeReads>,
    /// Batched /login-2fa writes (PostgreSQL).
    login_writes: Option<login_write::LoginWrites>,
}

/// Where reads run: PostgreSQL's pool, or SQLite's readers.
#[derive(Clone, Debug)]
pub enum Reader {
    /// PostgreSQL.
    Any(StatementPool),
    /// SQLite.
    Lite(Arc<LitePool>),
}

impl<'e> Executor<'e> for &'e Reader {
    fn into_ex(self) -> Ex<'e> {
        match self {
            Reader::Any(pool) => Ex::AnyPool(pool),
            Reader::Lite(pool) => Ex::LitePool(pool),
        }
    }
}

impl Db {
    /// Connects, creating an SQLite file (and its directory) if needed, and
    /// applies pending migrations.
    pub async fn connect(url: &str, pool: PoolSettings) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        match Target::parse(url)? {
            Target::Sqlite(path) => connect_sqlite(&path, pool).await,
            Target::Postgres(url) => connect_postgres(&url, pool).await,
        }
    }

    /// Where queries that only read run.
    pub fn reader(&self) -> &Reader {
        &self.read
    }

    /// Starts a write transaction: every write goes through one, so that on
    /// SQLite it can share a commit with its neighbours.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        self.write.begin().await
    }

    /// Runs `work` as one write transaction: committed, durably, when it
    /// returns `Ok`, rolled back when it returns `Err` ([`Writer::transact`]).
    /// On SQLite queued transactions run back to back on the writer, so the
    /// busiest writes take this way; `work` must then wait for nothing but
    /// the `db` functions.
    pub async fn transact<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        self.write.transact(Box::new(work)).await
    }

    /// The batched writes of /login-2fa's accepted TOTP codes, where that
    /// saves round trips and commits: PostgreSQL's. `None` on SQLite, whose
    /// writes share the writer's group commits.
    pub fn login_writes(&self) -> Option<&login_write::LoginWrites> {
        self.login_writes.as_ref()
    }

    /// The batched session lookups: PostgreSQL's; `None` on SQLite, whose
    /// reads cost no round trip.
    pub fn session_reads(&self) -> Option<&session_reads::SessionReads> {
        self.session_reads.as_ref()
    }

    /// The batched reads of /login-2fa: PostgreSQL's; `None` on SQLite.
    pub fn challenge_reads(&self) -> Option<&challenge_reads::ChallengeReads> {
        self.challenge_reads.as_ref()
    }

    /// At a graceful stop, once no request is left: closes PostgreSQL's
    /// connections, each with its goodbye to the server. (SQLite's close
    /// when the last handle is dropped.)
    pub async fn close(&self) {
        if let Reader::Any(statements) = &self.read {
            statements.close().await;
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sql::query("SELECT 1").execute(&self.read).await.map(|_| ())
    }
}

async fn connect_sqlite(path: &Path, settings: PoolSettings) -> anyhow::Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let path = std::path::absolute(path).context("resolving the database path")?;
    let url = url_for_sqlite(&path)?;
    let options = AnyConnectOptions::from_str(&url).context("building the SQLite URL")?;
    // sqlx applies the migrations (its bookkeeping table is the one older
    // versions wrote); the service then runs on rusqlite connections.
    let migrate = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout.max(Duration::from_secs(30)))
        .connect_with(options)
        .await
        .with_context(|| format!("opening SQLite database {}", path.display()))?;
    sqlx::Executor::execute(
        &migrate,
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;",
    )
    .await
    .context("switching SQLite to WAL")?;
    SQLITE_MIGRATIONS
        .run(&migrate)
        .await
        .context("applying SQLite migrations")?;
    migrate.close().await;
    let writer = lite::open(&path, lite::Role::Writer)
        .with_context(|| format!("opening SQLite database {}", path.display()))?;
    let group =
        Group::new(path.clone(), writer).context("starting the checkpoint and WAL sync threads")?;
    Ok(Db {
        read: Reader::Lite(Arc::new(LitePool::new(path))),
        write: Writer::Group(group),
        session_reads: None,
        challenge_reads: None,
        login_writes: None,
    })
}

fn url_for_sqlite(path: &Path) -> anyhow::Result<String> {
    let text = path.to_str().context("the database path is not UTF-8")?;
    let encoded: String = percent_encoding::utf8_percent_encode(text, percent_encoding::CONTROLS)
        .to_string()
        .replace('?', "%3F")
        .replace('#', "%23")
        .replace(' ', "%20");
    Ok(format!("sqlite://{encoded}?mode=rwc"))
}

/// A PostgreSQL connection idle this long is checked before use: pinged
/// by sqlx's pool on acquire, or by [`parked`] when it was parked.
const STALE_AFTER: Duration = Duration::from_secs(1);

async fn connect_postgres(url: &str, settings: PoolSettings) -> anyhow::Result<Db> {
    let options = AnyConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
    let pool = AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings a connection (a round trip) every time it is taken
        // from the pool and again when it is given back: three round trips
        // for a one-statement read such as /me. The one on acquire is kept
        // only for a connection idle long enough to have been cut
        // meanwhile; the one on release sqlx always makes, so statements
        // outside a transaction park their connections instead ([`parked`]).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= STALE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Every statement here is a short indexed lookup or write.
                // With stale statistics (a freshly loaded table) the planner
                // overestimates one, crosses jit_above_cost and compiles it
                // on every execution: 11 ms each, login-2fa at 0.2k/s.
                sqlx::Executor::execute(conn, "SET jit = off").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")?;
    POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .context("applying PostgreSQL migrations")?;
    // Statements outside a transaction (each request's reads, and
    // /login-2fa's batched writes, which hold their connection through the
    // commit's fsync) use three quarters of the connections at most, parked between
    // statements; the rest, at least one, are always free for transactions.
    let max = settings.max_connections as usize;
    let parked = (max * 3 / 4).min(max - 1);
    let statements = StatementPool::new(
        pool.clone(),
        parked,
        settings.acquire_timeout,
        Some(warm_batched),
    );
    // A connection for each worker of the batched statements opens at
    // start, warmed, so that the first requests do not wait for the
    // statements' first parse and plan: under load these few connections
    // carry the batches (BENCHMARKS.md, session 22). The service still
    // starts if some cannot be opened, as a pool that grows on demand would.
    let started = std::time::Instant::now();
    let (opened, error) = statements.fill(BATCH_WORKERS).await;
    match error {
        None => tracing::debug!(opened, elapsed = ?started.elapsed(), "database connections ready"),
        Some(error) => tracing::warn!(opened, wanted = BATCH_WORKERS, %error,
            "could not open every database connection at start; more open on demand"),
    }
    let login_writes = login_write::start(statements.clone());
    Ok(Db {
        session_reads: Some(session_reads::start(statements.clone())),
        challenge_reads: Some(challenge_reads::start(
            statements.clone(),
            login_writes.coming(),
        )),
        login_writes: Some(login_writes),
        read: Reader::Any(statements),
        write: Writer::Pool(pool),
    })
}

/// One connection for each worker of the batched statements.
const BATCH_WORKERS: usize = <session_reads::FindLive as batch::Statement>::WORKERS
    + <challenge_reads::ReadChallenges as batch::Statement>::WORKERS
    + <login_write::WriteLogins as batch::Statement>::WORKERS;

/// Runs every batched statement once on `conn` ([`batch::warm`]): what
/// [`StatementPool`] does to a connection before parking it for the first
/// time since it came out of sqlx's pool.
fn warm_batched(conn: &mut sqlx::AnyConnection) -> writer::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        batch::warm::<session_reads::FindLive>(conn).await?;
        batch::warm::<challenge_reads::ReadChallenges>(conn).await?;
        batch::warm::<login_write::WriteLogins>(conn).await
    })
}

/// Whether `err` means the database can't be reached or is going away
/// (answered 503 `unavailable`), as opposed to a bug (500).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception), 57P (server shutting
        // down), 53 (insufficient resources); SQLite's BUSY/LOCKED (5, 6).
        sqlx::Error::Database(e) => e.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("57P")
                || c.starts_with("53")
                || c == "5"
                || c == "6"
        }),
        _ => false,
    }
}

/// Whether `err` is a unique-constraint violation (mapped to 409).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        assert_eq!(
            Target::parse("sqlite://data/x.db").unwrap(),
            Target::Sqlite("data/x.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///abs/x.db").unwrap(),
            Target::Sqlite("/abs/x.db".into())
        );
        assert_eq!(
            Target::parse("x.db").unwrap(),
            Target::Sqlite("x.db".into())
        );
        assert!(matches!(
            Target::parse("postgres://u@h/db").unwrap(),
            Target::Postgres(_)
        ));
        assert!(Target::parse("mysql://h/db").is_err());
        assert!(Target::parse("sqlite://").is_err());
        assert!(Target::parse("").is_err());
    }
}
