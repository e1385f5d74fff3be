//! SQLite through rusqlite: opening connections, running one statement of
//! [`super::sql`], the pool of readers, and errors in sqlx's shape (so the
//! rest of the service handles one error type for both backends).
//!
//! Statements run on the calling thread, tokio's included. That is cheaper
//! than any hand-off: WAL readers never wait for a lock, the writer takes
//! its lock up front (`BEGIN IMMEDIATE`), and every statement we run is a
//! short indexed read or write of a few rows. The slow step, the fsync that
//! makes a COMMIT durable, runs on a thread of its own
//! ([`super::wal_sync`]), and the writer's checkpoints on the blocking pool.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::sql::{Arg, Value};

/// Prepared statements kept per connection: more than the service has, so
/// none is ever prepared twice.
const STATEMENT_CACHE: usize = 128;

/// How long a reader waits for a lock, and the writer for the write lock
/// (held briefly by another process, e.g. an operator command).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle readers kept open. Readers are only held for one statement, so at
/// most one per thread is in use at once.
const MAX_IDLE_READERS: usize = 16;

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The one writer ([`super::writer`]).
    Writer,
    /// A reader of [`LitePool`].
    Reader,
    /// The checkpointer ([`super::checkpoint`]).
    Checkpointer,
}

/// Opens a connection with the service's settings: WAL (readers run beside
/// the writer), `synchronous=FULL` (a COMMIT is on disk when it returns;
/// the writer's own COMMITs are synced by [`super::wal_sync`] instead),
/// foreign keys, and the savepoints' statement journal in memory.
pub fn open(path: &Path, role: Role) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    match role {
        // The writer never sleeps inside SQLite (it runs on tokio's
        // workers): it takes the write lock up front and retries that on a
        // timer. Nor does it checkpoint inside a COMMIT, which would hold
        // up every transaction of the next group ([`super::checkpoint`]).
        Role::Writer => {
            // rusqlite sets a 5 s busy timeout on every connection it opens.
            conn.busy_timeout(Duration::ZERO)?;
            // Its COMMITs are made durable by [`super::wal_sync`], after
            // the connection has gone on to the next group.
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;")?;
        }
        Role::Reader => {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // A write sent to a reader would bypass group commit: refuse it.
            conn.execute_batch("PRAGMA query_only = ON;")?;
        }
        Role::Checkpointer => conn.busy_timeout(BUSY_TIMEOUT)?,
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// SQLITE_BUSY: another connection holds the lock.
pub fn is_busy(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// Ends the process if `err` is a failed fsync (`SQLITE_IOERR_FSYNC`,
/// `SQLITE_IOERR_DIR_FSYNC`): the kernel may have dropped the pages it was
/// flushing and report the next fsync as fine, so neither a retry nor going
/// on is safe. On restart SQLite recovers from what is on disk (as
/// PostgreSQL does).
pub fn stop_if_fsync_failed(err: &rusqlite::Error) {
    use rusqlite::ffi::{SQLITE_IOERR_DIR_FSYNC, SQLITE_IOERR_FSYNC};
    if let rusqlite::Error::SqliteFailure(e, _) = err
        && matches!(e.extended_code, SQLITE_IOERR_FSYNC | SQLITE_IOERR_DIR_FSYNC)
    {
        tracing::error!(error = %err, "an fsync failed; stopping so that recovery starts from what is on disk");
        std::process::abort();
    }
}

/// Connections for reads, each lent for one statement.
#[derive(Debug)]
pub struct LitePool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl LitePool {
    /// Readers of the database at `path` (opened on demand).
    pub fn new(path: PathBuf) -> LitePool {
        LitePool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle reader, opening one if none is idle.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, sqlx::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, Role::Reader).map_err(into_sqlx)?,
        };
        let result = f(&mut conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        result.map_err(into_sqlx)
    }
}

/// Runs `f` on the writer inside its transaction. If SQLite has rolled the
/// transaction back on its own (it does on some errors, e.g. a full disk),
/// nothing more runs: it would run outside any transaction.
pub fn in_tx<R>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> Result<R, sqlx::Error> {
    if conn.is_autocommit() {
        return Err(sqlx::Error::Io(std::io::Error::other(
            "the write transaction was rolled back",
        )));
    }
    f(conn).map_err(into_sqlx)
}

/// Runs one statement with `$n` placeholders, calling `each` for every row
/// it returns; answers how many rows it changed.
pub fn run(
    conn: &Connection,
    sql: &str,
    args: &[Arg<'_>],
    mut each: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        // SQLite numbers named parameters by first appearance; `$2` may come
        // before `$1` or appear twice, so bind by the number in the name.
        let arg = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(index, args.len()))?;
        match *arg {
            Arg::Int(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Blob(v) => stmt.raw_bind_parameter(index, v)?,
        }
    }
    if stmt.column_count() == 0 {
        return stmt.raw_execute().map(|n| n as u64);
    }
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        each(row)?;
    }
    drop(rows);
    // What an INSERT/UPDATE/DELETE … RETURNING changed (rows it touched
    // itself, not cascades, as on PostgreSQL).
    Ok(if stmt.readonly() { 0 } else { conn.changes() })
}

/// A row's columns as owned values.
pub fn values(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Value>> {
    let count = row.as_ref().column_count();
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Real(v) => Value::Real(v),
            ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
        });
    }
    Ok(values)
}

/// An SQLite error, as sqlx's database error, so that the callers'
/// `is_unique_violation` and `is_unavailable` work for both backends.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LiteError {
    message: String,
    /// SQLite's primary result code (`SQLITE_BUSY` is 5), which is what
    /// [`super::is_unavailable`] reads.
    code: Option<i32>,
    /// The extended result code (`SQLITE_CONSTRAINT_UNIQUE` is 2067).
    extended: Option<i32>,
}

/// Converts a rusqlite error; the message is SQLite's (never a bound value).
pub fn into_sqlx(err: rusqlite::Error) -> sqlx::Error {
    let (code, extended) = match &err {
        rusqlite::Error::SqliteFailure(e, _) => {
            (Some(e.extended_code & 0xff), Some(e.extended_code))
        }
        _ => (None, None),
    };
    sqlx::Error::Database(Box::new(LiteError {
        message: err.to_string(),
        code,
        extended,
    }))
}

impl sqlx::error::DatabaseError for LiteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.extended {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_errors_keep_their_meaning_for_the_service() {
        let busy = into_sqlx(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert!(super::super::is_unavailable(&busy), "busy is a 503");
        assert!(!super::super::is_unique_violation(&busy));

        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT UNIQUE); INSERT INTO t VALUES ('a');")
            .unwrap();
        let again = conn
            .execute_batch("INSERT INTO t VALUES ('a')")
            .unwrap_err();
        let again = into_sqlx(again);
        assert!(super::super::is_unique_violation(&again), "a 409");
        assert!(!super::super::is_unavailable(&again), "not a 503");
        assert_eq!(
            again.as_database_error().unwrap().code().as_deref(),
            Some("19")
        );
    }

    #[test]
    fn placeholders_bind_by_their_number_in_any_order_and_repeated() {
        let conn = Connection::open_in_memory().unwrap();
        let mut got = Vec::new();
        let args = [Arg::Int(Some(1)), Arg::Text(Some("two")), Arg::Int(None)];
        run(&conn, "SELECT $2, $1, $2, $3", &args, |row| {
            got.push(values(row)?);
            Ok(())
        })
        .unwrap();
        let row: Vec<String> = got[0].iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(row, ["Text(\"two\")", "Int(1)", "Text(\"two\")", "Null"]);
        let missing = run(&conn, "SELECT $4", &args, |_| Ok(()));
        assert!(missing.is_err(), "a placeholder without an argument");
    }
}
