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
//!
//! The connections parked at start are warmed first ([`StatementPool::fill`]),
//! and one taken from sqlx's pool later is warmed before it is parked, on a
//! task of its own ([`StatementPool::new`]), so that the first parse and
//! plan of the statements on a connection is not paid by a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::STALE_AFTER;
use super::writer::BoxFuture;

/// Runs statements on a connection so that the database has parsed and
/// planned them before a request needs them.
pub type Warm = fn(&mut AnyConnection) -> BoxFuture<'_, Result<(), sqlx::Error>>;

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
    permits: Option<Arc<Semaphore>>,
    /// How long a statement waits for a connection.
    timeout: Duration,
    /// Run on each connection from sqlx's pool before it is parked.
    warm: Option<Warm>,
    /// Whether a connection is being warmed: one at a time, so that a burst
    /// of connections taken from sqlx's pool (after a restart of PostgreSQL,
    /// say) is not also a burst of warming on the cores the requests need;
    /// the others are parked cold and warmed after a later statement.
    warming: AtomicBool,
}

#[derive(Debug)]
struct Parked {
    conn: PoolConnection<Any>,
    /// When it was parked.
    since: Instant,
    /// When it was taken from sqlx's pool.
    out_since: Instant,
    /// Whether it has been warmed.
    warmed: bool,
}

impl StatementPool {
    /// Lends at most `cap` of `pool`'s connections to statements at once
    /// and parks them between statements, so that the rest stay free for
    /// transactions; with `cap` 0 every statement takes one from `pool`.
    /// A statement waits at most `timeout` for its connection. `warm`, if
    /// any, runs on each connection taken from `pool` once a statement here
    /// is done, before it is parked: on a task of its own, which keeps the
    /// connection's place among the `cap` until then, one connection at a
    /// time. A connection whose warming fails goes back to `pool`.
    pub fn new(pool: AnyPool, cap: usize, timeout: Duration, warm: Option<Warm>) -> StatementPool {
        StatementPool {
            inner: Arc::new(Inner {
                pool,
                parked: Mutex::new(Vec::with_capacity(cap)),
                permits: (cap > 0).then(|| Arc::new(Semaphore::new(cap))),
                timeout,
                warm,
                warming: AtomicBool::new(false),
            }),
        }
    }

    /// Opens `n` connections (at most the cap) all at once, warms them and
    /// parks them: at start, so that the first requests find connections
    /// ready rather than each opening and warming its own. Returns how
    /// many were parked, and the first error if any failed.
    pub async fn fill(&self, n: usize) -> (usize, Option<sqlx::Error>) {
        let (Some(permits), Some(warm)) = (&self.inner.permits, self.inner.warm) else {
            return (0, None);
        };
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..n.min(permits.available_permits()) {
            let (inner, permits) = (Arc::clone(&self.inner), Arc::clone(permits));
            opening.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                // Parked connections are out of sqlx's pool, so each of
                // these is a new one (but for the one sqlx opened to check
                // the URL).
                let mut conn = inner.pool.acquire().await?;
                inner.warm_within_timeout(warm, &mut conn).await?;
                let now = Instant::now();
                inner.lock().push(Parked {
                    conn,
                    since: now,
                    out_since: now,
                    warmed: true,
                });
                Ok(())
            });
        }
        let (mut parked, mut error) = (0, None);
        while let Some(done) = opening.join_next().await {
            match done {
                Ok(Ok(())) => parked += 1,
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(_) => error = error.or(Some(sqlx::Error::WorkerCrashed)),
            }
        }
        (parked, error)
    }

    /// At a graceful stop: closes the parked connections, then sqlx's pool,
    /// each connection with its goodbye to the server (without one,
    /// PostgreSQL logs every connection of a stopped instance as a client
    /// lost). Waits at most the statements' timeout for connections still
    /// lent; those are dropped with the process.
    pub async fn close(&self) {
        let parked = std::mem::take(&mut *self.inner.lock());
        for p in parked {
            // Closing a parked connection frees its place in sqlx's pool,
            // which `pool.close` then waits for no more.
            let _ = p.conn.close().await;
        }
        let closing = self.inner.pool.close();
        if tokio::time::timeout(self.inner.timeout, closing)
            .await
            .is_err()
        {
            tracing::debug!("database connections still lent at the stop");
        }
    }

    /// A connection for one statement: the most recently parked one that is
    /// not stale, or one from sqlx's pool.
    pub async fn lease(&self) -> Result<Lease, sqlx::Error> {
        tokio::time::timeout(self.inner.timeout, self.wait())
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn wait(&self) -> Result<Lease, sqlx::Error> {
        let permit = match &self.inner.permits {
            Some(permits) => Some(
                Arc::clone(permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        let fresh = match permit {
            Some(_) => self.pop_checked().await,
            None => None,
        };
        let (conn, out_since, warmed) = match fresh {
            Some(p) => (p.conn, p.out_since, p.warmed),
            None => (self.inner.pool.acquire().await?, Instant::now(), false),
        };
        Ok(Lease {
            conn: Some(conn),
            out_since,
            warmed,
            home: Arc::clone(&self.inner),
            finished: false,
            permit,
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
    async fn pop_checked(&self) -> Option<Parked> {
        let mut parked = self.inner.lock().pop()?;
        if parked.since.elapsed() < STALE_AFTER
            || matches!(
                tokio::time::timeout(PING_WAIT, sqlx::Connection::ping(&mut *parked.conn)).await,
                Ok(Ok(()))
            )
        {
            return Some(parked);
        }
        // Given back to sqlx (dropped), whose own ping closes a cut one.
        drop(parked);
        self.inner.lock().clear();
        None
    }
}

impl Inner {
    /// `warm` on `conn`, for at most the statements' own `timeout`: a
    /// stalled database must not hold a connection's place (or the start)
    /// for longer than it holds a request.
    async fn warm_within_timeout(
        &self,
        warm: Warm,
        conn: &mut AnyConnection,
    ) -> Result<(), sqlx::Error> {
        tokio::time::timeout(self.timeout, warm(conn))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // The list is valid whatever a panicking holder did.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection lent for one statement; parked again when dropped if the
/// statement finished ([`Lease::settle`]), else given back to sqlx.
pub struct Lease {
    conn: Option<PoolConnection<Any>>,
    out_since: Instant,
    /// Whether it has been warmed.
    warmed: bool,
    home: Arc<Inner>,
    finished: bool,
    /// Released after `drop` has parked the connection, for the next.
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
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

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let now = Instant::now();
        if self.home.permits.is_none()
            || !self.finished
            || now.duration_since(self.out_since) >= BACK_AFTER
        {
            return; // dropped: sqlx pings it
        }
        let out_since = self.out_since;
        let warm = self.home.warm.filter(|_| !self.warmed);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let claimed = warm.is_some()
            && runtime.is_some()
            && (self.home.warming)
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        let (true, Some(warm), Some(runtime)) = (claimed, warm, runtime) else {
            // At most one parked connection per permit: no bound needed here.
            self.home.lock().push(Parked {
                conn,
                since: now,
                out_since,
                warmed: self.warmed,
            });
            return;
        };
        let home = Arc::clone(&self.home);
        let permit = self.permit.take();
        runtime.spawn(async move {
            let warmed = home.warm_within_timeout(warm, &mut conn).await;
            home.warming.store(false, Ordering::Release);
            match warmed {
                Ok(()) => home.lock().push(Parked {
                    conn,
                    since: Instant::now(),
                    out_since,
                    warmed: true,
                }),
                // Dropped: sqlx pings it, and closes it if it is cut.
                Err(e) => tracing::warn!(error = %e, "warming a database connection failed"),
            }
            drop(permit);
        });
    }
}
