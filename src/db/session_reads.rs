//! Session lookups on PostgreSQL, batched: the lookups that arrive while
//! one is in flight go to the database together, in one statement, as the
//! SQLite writer shares one commit among the transactions queued behind it.
//!
//! Every request that carries a bearer token looks its session up. On
//! PostgreSQL each lookup on its own is a round trip, a wake-up of a
//! backend and of the server; this is what kept /me at a quarter of the
//! /healthz ceiling (BENCHMARKS.md, session 15). There is no timer: a
//! batch is whatever is waiting when a worker is free, so a lone lookup
//! goes at once.

use std::sync::{Arc, LazyLock};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::parked::StatementPool;
use super::sessions::{self, SessionUser};
use super::sql::{Ex, query};

/// Most lookups in one statement; batches are padded up to a power of two
/// so that a connection caches few statements.
const MAX_BATCH: usize = 64;

/// Workers, each with at most one statement in flight.
const WORKERS: usize = 2;

/// One statement per padded batch size (1, 2, 4, … 64): each lookup is a
/// row of `VALUES (index, key, now)`, and each answer row carries its
/// lookup's index, so no key is compared outside the database.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=MAX_BATCH.trailing_zeros())
        .map(|p| {
            let values: Vec<String> = (0..1usize << p)
                .map(|i| {
                    format!(
                        "(CAST(${} AS BIGINT), CAST(${} AS BYTEA), CAST(${} AS BIGINT))",
                        3 * i + 1,
                        3 * i + 2,
                        3 * i + 3
                    )
                })
                .collect();
            format!(
                "SELECT k.i, {} FROM (VALUES {}) AS k(i, h, now) \
                 JOIN sessions s ON s.token_hash = k.h AND s.expires_at > k.now \
                 JOIN users u ON u.id = s.user_id",
                sessions::SESSION_USER_COLUMNS,
                values.join(", ")
            )
        })
        .collect()
});

struct Lookup {
    key: Vec<u8>,
    now: i64,
    answer: oneshot::Sender<Result<Option<SessionUser>, sqlx::Error>>,
}

/// The way into the workers; cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionReads {
    queue: mpsc::Sender<Lookup>,
}

impl SessionReads {
    /// Starts the workers on the current tokio runtime; they stop when the
    /// last handle is dropped.
    pub fn start(pool: StatementPool) -> SessionReads {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), Arc::clone(&rx)));
        }
        SessionReads { queue }
    }

    /// The live session whose token has key `key` at `now`.
    pub async fn find(&self, key: &[u8], now: i64) -> Result<Option<SessionUser>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let lookup = Lookup {
            key: key.to_vec(),
            now,
            answer,
        };
        self.queue
            .send(lookup)
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answered.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn work(pool: StatementPool, rx: Arc<Mutex<mpsc::Receiver<Lookup>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(lookup) => batch.push(lookup),
                    Err(_) => break,
                }
            }
            batch
        };
        answer(&pool, batch).await;
    }
}

async fn answer(pool: &StatementPool, batch: Vec<Lookup>) {
    let size = batch.len().next_power_of_two();
    let sql: &'static str = &BATCH_SQL[size.trailing_zeros() as usize];
    let mut q = query(sql);
    for (i, lookup) in batch.iter().enumerate() {
        q = q.bind(i as i64).bind(&lookup.key).bind(lookup.now);
    }
    // Padding: a key no token has (keys are never empty).
    for _ in batch.len()..size {
        q = q.bind(-1i64).bind(&[][..]).bind(0i64);
    }
    let rows = q.fetch_all(Ex::AnyPool(pool)).await;
    let mut found: Vec<Option<SessionUser>> = batch.iter().map(|_| None).collect();
    let failed = match rows {
        Ok(rows) => rows.iter().try_for_each(|row| {
            let i: i64 = row.try_get(0)?;
            let slot = usize::try_from(i).ok().and_then(|i| found.get_mut(i));
            if let Some(slot) = slot {
                *slot = Some(sessions::session_user(row, 1)?);
            }
            Ok::<(), sqlx::Error>(())
        }),
        Err(e) => Err(e),
    }
    .err();
    if let Some(e) = failed.as_ref().filter(|e| !super::is_unavailable(e)) {
        tracing::error!(error = %e, "a batched session lookup failed");
    }
    for (lookup, user) in batch.into_iter().zip(found) {
        let result = match &failed {
            None => Ok(user),
            Some(e) => Err(same_kind(e)),
        };
        // The request may be gone; nothing to do then.
        let _ = lookup.answer.send(result);
    }
}

/// An error for each lookup of a failed batch (sqlx's errors are not
/// `Clone`): the database being unreachable stays a 503, anything else is
/// a 500, its cause logged once above.
fn same_kind(e: &sqlx::Error) -> sqlx::Error {
    if super::is_unavailable(e) {
        sqlx::Error::PoolTimedOut
    } else {
        sqlx::Error::Decode("a batched session lookup failed".into())
    }
}
