//! Statements batched across requests, on PostgreSQL: the requests that
//! arrive while a batch is in flight go to the database together, in one
//! statement, as the SQLite writer shares one commit among the
//! transactions queued behind it.
//!
//! On PostgreSQL every statement is a round trip and a wake-up of a
//! backend and of the server; for a request that reads one row that is
//! most of its cost (BENCHMARKS.md, sessions 15 and 17). There is no
//! timer: a batch is whatever is waiting when a worker is free (and, for a
//! statement that gathers, what the tasks already woken add while the
//! worker yields to them), so a lone request goes at once (after one turn
//! of the scheduler, when it gathers). A worker also waits for the
//! requests the stage before has announced as on their way ([`Coming`]:
//! the logins a batched read has just found, each some microseconds of CPU
//! from the batched write), so that they make one batch and not a batch of
//! the first to arrive, committed alone, and another of the rest; at most
//! [`COMING_WAIT`], in case one is held up. Each request is a row of `VALUES`,
//! with its index in the batch, and each answer row carries that index
//! back, so no key is compared outside the database. A batch is padded up
//! to a power of two so that a connection caches few statements.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use super::parked::StatementPool;
use super::sql::{Ex, Query, query};
use super::writer::BoxFuture;

/// One kind of batched statement.
pub trait Statement: Send + Sync + 'static {
    /// What a request asks.
    type Item: Send + 'static;
    /// What it is answered.
    type Answer: Send + 'static;
    /// Most requests in one statement (a power of two).
    const MAX: usize;
    /// Workers, each with at most one statement in flight.
    const WORKERS: usize = 2;
    /// Whether a worker, before its statement goes, lets the tasks already
    /// woken run and takes what they queue, as long as each turn brings
    /// more. Worth it where one batch's answers make the requests of the
    /// next (a bearer request's lookup: /me's batches grew from ~9 to ~40
    /// and PostgreSQL's CPU per /me fell by a third to a half); not in
    /// /login-2fa's read and write, where the wait left the cores idler
    /// and the logins no more (BENCHMARKS.md, session 19).
    const GATHER: bool = false;

    /// The statement for each padded batch size ([`padded`]).
    fn statements() -> &'static [String];

    /// Binds one row of padding: a row that matches nothing.
    fn pad(q: Query<'_>) -> Query<'_>;

    /// Runs `items` (at most [`Self::MAX`]) as one statement and answers
    /// each, in their order.
    fn run<'a>(
        &'a self,
        pool: &'a StatementPool,
        items: &'a [Self::Item],
    ) -> BoxFuture<'a, Result<Vec<Self::Answer>, sqlx::Error>>;
}

type Queued<S> = (
    <S as Statement>::Item,
    oneshot::Sender<Result<<S as Statement>::Answer, sqlx::Error>>,
);

/// The way into a statement's workers; cheap to clone.
pub struct Batcher<S: Statement> {
    queue: mpsc::Sender<Queued<S>>,
    coming: Arc<Coming>,
}

impl<S: Statement> Clone for Batcher<S> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
            coming: Arc::clone(&self.coming),
        }
    }
}

/// Requests on their way to a batcher: announced by the stage before it
/// (a batch of reads, as it answers), each counted until it is queued or
/// turns back. A worker that finds fewer queued than are coming waits for
/// them, so that one batch's answers make one batch after it rather than a
/// batch of the first to arrive and another of the rest.
#[derive(Debug, Default)]
pub struct Coming {
    count: AtomicUsize,
    moved: Notify,
}

/// One request counted in [`Coming`] until it is dropped (or queued, by
/// [`Batcher::ask_expected`]).
#[derive(Debug)]
pub struct Expected(Arc<Coming>);

impl Coming {
    /// Counts one more request on its way.
    pub fn expect(self: &Arc<Self>) -> Expected {
        self.count.fetch_add(1, Ordering::SeqCst);
        Expected(Arc::clone(self))
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.moved.notify_one();
    }
}

/// The longest a worker waits for requests announced as coming (a safety
/// net: each is a few microseconds of CPU away from its queue).
const COMING_WAIT: Duration = Duration::from_millis(1);

impl<S: Statement> std::fmt::Debug for Batcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<S: Statement> Batcher<S> {
    /// Starts the workers on the current tokio runtime; they stop when the
    /// last handle is dropped.
    pub fn start(statement: S, pool: StatementPool) -> Batcher<S> {
        let (queue, rx) = mpsc::channel(4 * S::MAX);
        let rx = Arc::new(Mutex::new(rx));
        let statement = Arc::new(statement);
        let coming = Arc::new(Coming::default());
        for _ in 0..S::WORKERS {
            tokio::spawn(work(
                Arc::clone(&statement),
                pool.clone(),
                Arc::clone(&rx),
                Arc::clone(&coming),
            ));
        }
        Batcher { queue, coming }
    }

    /// The count of requests on their way here.
    pub fn coming(&self) -> Arc<Coming> {
        Arc::clone(&self.coming)
    }

    /// [`Self::ask`] for a request counted in [`Self::coming`], which it
    /// stops counting once queued.
    pub async fn ask_expected(
        &self,
        item: S::Item,
        expected: Option<Expected>,
    ) -> Result<S::Answer, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let sent = self.queue.send((item, answer)).await;
        drop(expected);
        sent.map_err(|_| sqlx::Error::WorkerCrashed)?;
        answered.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// Asks `item` in the next batch and waits for its answer.
    pub async fn ask(&self, item: S::Item) -> Result<S::Answer, sqlx::Error> {
        self.ask_expected(item, None).await
    }
}

async fn work<S: Statement>(
    statement: Arc<S>,
    pool: StatementPool,
    rx: Arc<Mutex<mpsc::Receiver<Queued<S>>>>,
    coming: Arc<Coming>,
) {
    loop {
        let (items, answers): (Vec<_>, Vec<_>) = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            let drain = |batch: &mut Vec<_>, rx: &mut mpsc::Receiver<_>| {
                while batch.len() < S::MAX {
                    match rx.try_recv() {
                        Ok(queued) => batch.push(queued),
                        Err(_) => break,
                    }
                }
            };
            drain(&mut batch, &mut rx);
            // The answers of the batch before wake many requests at once,
            // each about to ask again: letting the tasks already woken run
            // first makes one batch of what would be several.
            while S::GATHER && batch.len() < S::MAX {
                let before = batch.len();
                tokio::task::yield_now().await;
                drain(&mut batch, &mut rx);
                if batch.len() == before {
                    break;
                }
            }
            // Requests announced as coming are a few microseconds away.
            let deadline = tokio::time::Instant::now() + COMING_WAIT;
            // A request that turns back or is queued after the count was
            // read leaves a permit on `moved`, so no wake-up is missed.
            while batch.len() < S::MAX && coming.count.load(Ordering::SeqCst) > 0 {
                let moved = coming.moved.notified();
                if tokio::time::timeout_at(deadline, moved).await.is_err() {
                    break;
                }
                drain(&mut batch, &mut rx);
            }
            batch.into_iter().unzip()
        };
        // On a task of its own, so that a panic fails this batch and not
        // every batch after it.
        let run = {
            let (statement, pool) = (Arc::clone(&statement), pool.clone());
            tokio::spawn(async move { statement.run(&pool, &items).await })
        };
        match run.await {
            Ok(Ok(found)) if found.len() == answers.len() => {
                for (answer, found) in answers.into_iter().zip(found) {
                    // The request may be gone; nothing to do then.
                    let _ = answer.send(Ok(found));
                }
            }
            Ok(Ok(_)) => fail(
                answers,
                &sqlx::Error::Decode("a batch lost an answer".into()),
            ),
            Ok(Err(e)) => fail(answers, &e),
            Err(_) => fail(answers, &sqlx::Error::Decode("a batch panicked".into())),
        }
    }
}

/// Gives each request of a failed batch an error of its own (sqlx's errors
/// are not `Clone`): the database being unreachable stays a 503, anything
/// else is a 500, its cause logged once here.
fn fail<A>(answers: Vec<oneshot::Sender<Result<A, sqlx::Error>>>, e: &sqlx::Error) {
    let unavailable = super::is_unavailable(e);
    if !unavailable {
        tracing::error!(error = %e, requests = answers.len(), "a batched statement failed");
    }
    for answer in answers {
        let e = if unavailable {
            sqlx::Error::PoolTimedOut
        } else {
            sqlx::Error::Decode("a batched statement failed".into())
        };
        let _ = answer.send(Err(e));
    }
}

/// `rows` rows of `VALUES`, each a cell per type in `types`, numbered from
/// `$1` on: `(CAST($1 AS BIGINT), CAST($2 AS BYTEA)), (…)`.
pub fn values(types: &[&str], rows: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| {
            let cells: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(c, ty)| format!("CAST(${} AS {ty})", row * types.len() + c + 1))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// One statement per padded batch size, 1, 2, 4, … `max`: `sql(rows)`.
pub fn padded(max: usize, sql: impl Fn(usize) -> String) -> Vec<String> {
    (0..=max.trailing_zeros())
        .map(|p| sql(1usize << p))
        .collect()
}

/// `S`'s statement for `n` requests, and how many rows of padding
/// ([`Statement::pad`]) it needs.
pub fn pick<S: Statement>(n: usize) -> (&'static str, usize) {
    let size = n.next_power_of_two();
    (&S::statements()[size.trailing_zeros() as usize], size - n)
}

/// Runs each of `S`'s statements once on `conn`, with padding only, so
/// nothing is read or written ([`super::parked`] does it to the connections
/// it opens at start, and to one taken from sqlx's pool later before it
/// parks it): the first run of a statement on a connection
/// parses and plans it, 1–5 ms for the larger ones, and without this the
/// first batches on each connection paid that on the path of their
/// requests (BENCHMARKS.md, session 22).
pub async fn warm<S: Statement>(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    for (p, sql) in S::statements().iter().enumerate() {
        let mut q = query(sql);
        for _ in 0..1usize << p {
            q = S::pad(q);
        }
        q.fetch_all(Ex::AnyConn(&mut *conn)).await?;
    }
    Ok(())
}
