//! PostgreSQL connections for statements outside a transaction (reads,
//! one-statement writes), parked between statements instead of going back
//! to sqlx's pool.
//!
//! Why by hand: sqlx pings every connection given back to its pool (a
//! round trip, `return_to_pool` in sqlx-core 0.9's `pool/connection.rs`),
//! and no option turns that off. For a one-statement request such as /me
//! that is half its round trips: with the ping skipped, /me gave 21–27% more
//! requests per second and /login-2fa 17–27% more (BENCHMARKS.md, session
//! 15). A statement outside a transaction leaves nothing to flush, and sqlx
//! drains a connection's unread replies before its next statement, so here
//! a connection goes back unpinged after a statement that finished; after
//! one that did not (its request was dropped mid-way, or it failed on I/O)
//! it goes back to sqlx, whose ping checks it. Transactions still use sqlx's
//! pool directly, so a rolled-back one is flushed at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::STALE_AFTER;

/// A connection out of sqlx's pool this long goes back to it after its
/// statement, so that sqlx's checks (its ping, its `max_lifetime`) still
/// reach a connection that is never idle.
const BACK_AFTER: Duration = Duration::from_secs(60);

/// The longest a stale parked connection's ping may take before it is
/// given up for one from sqlx's pool (a cut one may not answer at all).
const PING_WAIT: Duration = Duration::from_millis(500);

/// sqlx's pool, with up to `cap` connections out of it for statements
/// outside a transaction, lent in the order they were asked for.
#[derive(Clone, Debug)]
pub struct StatementPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: AnyPool,
    parked: Mutex<Vec<Parked>>,
    /// One per connection out of sqlx's pool on this path. Tokio's
    /// semaphore is first come, first served: a request never overtakes one
    /// that is already waiting (leases taken straight from the parked list
    /// while others queued in sqlx's pool gave a p99 of 150 ms).
    permits: Option<Semaphore>,
    /// How long a statement waits for a connection.
    timeout: Duration,
}

#[derive(Debug)]
struct Parked {
    conn: PoolConnection<Any>,
    /// When it was parked.
    since: Instant,
    /// When it was taken from sqlx's pool.
    out_since: Instant,
}

impl StatementPool {
    /// Lends at most `cap` of `pool`'s connections to statements at once
    /// and parks them between statements, so that the rest stay free for
    /// transactions; with `cap` 0 every statement takes one from `pool`.
    /// A statement waits at most `timeout` for its connection.
    pub fn new(pool: AnyPool, cap: usize, timeout: Duration) -> StatementPool {
        StatementPool {
            inner: Arc::new(Inner {
                pool,
                parked: Mutex::new(Vec::with_capacity(cap)),
                permits: (cap > 0).then(|| Semaphore::new(cap)),
                timeout,
            }),
        }
    }

    /// A connection for one statement: the most recently parked one that is
    /// not stale, or one from sqlx's pool.
    pub async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        tokio::time::timeout(self.inner.timeout, self.wait())
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn wait(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = match &self.inner.permits {
            Some(permits) => Some(
                permits
                    .acquire()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        let fresh = match permit {
            Some(_) => self.pop_checked().await,
            None => None,
        };
        let (conn, out_since) = match fresh {
            Some(fresh) => fresh,
            None => (self.inner.pool.acquire().await?, Instant::now()),
        };
        Ok(Lease {
            conn: Some(conn),
            out_since,
            home: &self.inner,
            finished: false,
            _permit: permit,
        })
    }

    /// The most recently parked connection; one parked for [`STALE_AFTER`]
    /// or more is pinged first (as sqlx's pool checks a connection idle that
    /// long). If the ping fails or takes over [`PING_WAIT`], the others are
    /// likely cut too (a restart, a firewall's idle timeout): all are handed
    /// back to sqlx, which checks each apart from any request, and the lease
    /// takes one from sqlx's pool, so a request waits for one ping at most.
    /// Otherwise only the connection taken is checked: handing every stale
    /// one back to sqlx at once, as before, made a burst of pings on the
    /// path of the first requests after a quiet second, and shuffled the
    /// connections, so the first batches also prepared their statements
    /// anew on connections that had not run them (BENCHMARKS.md, session 21).
    async fn pop_checked(&self) -> Option<(PoolConnection<Any>, Instant)> {
        let parked = self.inner.lock().pop()?;
        let mut conn = parked.conn;
        if parked.since.elapsed() < STALE_AFTER
            || matches!(
                tokio::time::timeout(PING_WAIT, sqlx::Connection::ping(&mut *conn)).await,
                Ok(Ok(()))
            )
        {
            return Some((conn, parked.out_since));
        }
        // Given back to sqlx (dropped), whose own ping closes a cut one.
        drop(conn);
        self.inner.lock().clear();
        None
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // The list is valid whatever a panicking holder did.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection lent for one statement; parked again when dropped if the
/// statement finished ([`Lease::settle`]), else given back to sqlx.
pub struct Lease<'p> {
    conn: Option<PoolConnection<Any>>,
    out_since: Instant,
    home: &'p Inner,
    finished: bool,
    /// Released after `drop` has parked the connection, for the next.
    _permit: Option<SemaphorePermit<'p>>,
}

impl Lease<'_> {
    /// The connection to run the statement on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// Records how the statement ended: a result or an error from the
    /// database leaves the connection ready for the next one; an I/O or
    /// protocol error does not.
    pub fn settle<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.finished = matches!(result, Ok(_) | Err(sqlx::Error::Database(_)));
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let now = Instant::now();
        if self.home.permits.is_none()
            || !self.finished
            || now.duration_since(self.out_since) >= BACK_AFTER
        {
            return; // dropped: sqlx pings it
        }
        // At most one parked connection per permit: no bound needed here.
        self.home.lock().push(Parked {
            conn,
            since: now,
            out_since: self.out_since,
        });
    }
}
