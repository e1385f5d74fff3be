//! /login-2fa's write for an accepted TOTP code on PostgreSQL, batched: the
//! logins that arrive while a batch is in flight go to the database
//! together, in one statement, one transaction and one commit, as the
//! SQLite writer shares one commit among the transactions queued behind it.
//!
//! Each login is a row of `VALUES`, passed to `login_2fa_totp_try`
//! (migration 0009), which runs `login_2fa_totp` (migration 0008: the
//! general path's statements in their order) in a subtransaction of its
//! own; a login the general path would refuse is undone alone and reported
//! as not written. One login on its own was two round trips and a commit's
//! fsync of the database's CPU; batched, the statement's round trip, its
//! commit and its fsync are shared (BENCHMARKS.md, session 17). There is no
//! timer: a batch is whatever is waiting when a worker is free, so a lone
//! login goes at once.

use std::sync::{Arc, LazyLock};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::parked::StatementPool;
use super::sessions::NewSession;
use super::sql::{Arg, Ex, query};
use crate::auth::tokens::TokenKey;

/// What the write stores (see [`LoginWrites::write`]).
pub struct TotpLogin<'a> {
    /// The device whose code was accepted.
    pub credential_id: i64,
    /// The code's time step: the device's new replay floor.
    pub step: i64,
    /// The device's drift to remember.
    pub drift_steps: i64,
    /// Whether the code confirms the device's enrollment.
    pub confirm: bool,
    /// The time of the attempt.
    pub now: i64,
    /// The lockout's subject and the audit's username (case-folded).
    pub subject: &'a str,
    /// The challenge to spend.
    pub challenge: &'a TokenKey,
    /// The session to store (its `user_id` is the account's).
    pub session: &'a NewSession<'a>,
}

/// Most logins in one statement. Each is a subtransaction with an xid of
/// its own, and PostgreSQL caches 64 of those per transaction before other
/// sessions' snapshots get slower; batches are padded up to a power of two
/// so that a connection caches few statements.
const MAX_BATCH: usize = 32;

/// Workers, each with at most one statement in flight.
const WORKERS: usize = 2;

/// The types of a login's row: its index, then `login_2fa_totp_try`'s
/// parameters.
const TYPES: [&str; 16] = [
    "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BYTEA", "BYTEA",
    "BYTEA", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT",
];

/// One statement per padded batch size (1, 2, 4, … 32). A padding row has
/// index -1 and is filtered out before the function is called; each answer
/// row carries its login's index.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=MAX_BATCH.trailing_zeros())
        .map(|p| {
            let rows: Vec<String> = (0..1usize << p)
                .map(|row| {
                    let cells: Vec<String> = TYPES
                        .iter()
                        .enumerate()
                        .map(|(c, ty)| format!("CAST(${} AS {ty})", row * TYPES.len() + c + 1))
                        .collect();
                    format!("({})", cells.join(", "))
                })
                .collect();
            format!(
                "SELECT k.i, login_2fa_totp_try(k.c, k.st, k.d, k.cf, k.now, k.sub, k.u, \
                 k.ch, k.chl, k.s, k.pid, k.ca, k.ea, k.addr, k.ua) \
                 FROM (VALUES {}) AS k(i, c, st, d, cf, now, sub, u, ch, chl, s, pid, ca, ea, addr, ua) \
                 WHERE k.i >= 0",
                rows.join(", ")
            )
        })
        .collect()
});

/// A login waiting for its batch: [`TotpLogin`]'s values, owned.
struct Pending {
    ints: [i64; 5],
    subject: String,
    user_id: i64,
    challenge: Vec<u8>,
    challenge_legacy: Vec<u8>,
    session: Vec<u8>,
    public_id: String,
    created_at: i64,
    expires_at: i64,
    client_addr: Option<String>,
    user_agent: Option<String>,
    answer: oneshot::Sender<Result<bool, sqlx::Error>>,
}

/// The way into the workers; cheap to clone.
#[derive(Clone, Debug)]
pub struct LoginWrites {
    queue: mpsc::Sender<Pending>,
}

impl LoginWrites {
    /// Starts the workers on the current tokio runtime; they stop when the
    /// last handle is dropped.
    pub fn start(pool: StatementPool) -> LoginWrites {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), Arc::clone(&rx)));
        }
        LoginWrites { queue }
    }

    /// Stores the login: `Ok(true)` once it is committed; `Ok(false)` when
    /// nothing of it was written, because the code was used meanwhile, a
    /// lock started, the challenge is gone, or its batch was refused as a
    /// whole (a deadlock with another batch, say): the caller then runs the
    /// general path, which gives the answer.
    pub async fn write(&self, l: &TotpLogin<'_>) -> Result<bool, sqlx::Error> {
        let s = l.session;
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            ints: [
                l.credential_id,
                l.step,
                l.drift_steps,
                i64::from(l.confirm),
                l.now,
            ],
            subject: l.subject.to_owned(),
            user_id: s.user_id,
            challenge: l.challenge.key().to_vec(),
            challenge_legacy: l.challenge.legacy().to_vec(),
            session: s.key.to_vec(),
            public_id: s.public_id.to_owned(),
            created_at: s.now,
            expires_at: s.expires_at,
            client_addr: s.client_addr.map(str::to_owned),
            user_agent: s.user_agent.map(str::to_owned),
            answer,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answered.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn work(pool: StatementPool, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            batch
        };
        settle(&pool, batch).await;
    }
}

async fn settle(pool: &StatementPool, mut batch: Vec<Pending>) {
    // Every batch takes its accounts' rows in the order of their ids, so
    // two batches in flight that share accounts wait for each other
    // instead of deadlocking.
    batch.sort_by_key(|p| p.user_id);
    let size = batch.len().next_power_of_two();
    let sql: &'static str = &BATCH_SQL[size.trailing_zeros() as usize];
    let mut q = query(sql);
    for (i, p) in batch.iter().enumerate() {
        q = q.bind(i as i64);
        for v in p.ints {
            q = q.bind(v);
        }
        q = q
            .bind(p.subject.as_str())
            .bind(p.user_id)
            .bind(&p.challenge)
            .bind(&p.challenge_legacy)
            .bind(&p.session)
            .bind(p.public_id.as_str())
            .bind(p.created_at)
            .bind(p.expires_at)
            .bind(p.client_addr.as_deref())
            .bind(p.user_agent.as_deref());
    }
    // Padding: index -1 and nulls, each of its column's type.
    for _ in batch.len()..size {
        q = q.bind(-1i64);
        for ty in &TYPES[1..] {
            q = q.bind(match *ty {
                "TEXT" => Arg::Text(None),
                "BYTEA" => Arg::Blob(None),
                _ => Arg::Int(None),
            });
        }
    }
    let rows = q.fetch_all(Ex::AnyPool(pool)).await;
    let mut written = vec![None; batch.len()];
    let failed = match rows {
        Ok(rows) => rows.iter().try_for_each(|row| {
            let i: i64 = row.try_get(0)?;
            let done: i64 = row.try_get(1)?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| written.get_mut(i)) {
                *slot = Some(done == 1);
            }
            Ok::<(), sqlx::Error>(())
        }),
        Err(e) => Err(e),
    }
    .err();
    let failed = failed.map(|e| {
        if super::is_unavailable(&e) {
            // The commit's fate is unknown: 503, as for any write.
            Err(sqlx::Error::PoolTimedOut)
        } else if matches!(e, sqlx::Error::Database(_)) {
            // The database refused the statement, so it undid all of it.
            tracing::warn!(error = %e, logins = batch.len(),
                "a batch of logins was refused; each runs on its own");
            Ok(false)
        } else {
            tracing::error!(error = %e, "a batch of logins failed");
            Err(sqlx::Error::Decode("a batch of logins failed".into()))
        }
    });
    for (p, done) in batch.into_iter().zip(written) {
        let result = match (&failed, done) {
            (None, Some(done)) => Ok(done),
            (Some(Ok(nothing)), _) => Ok(*nothing),
            (Some(Err(sqlx::Error::PoolTimedOut)), _) => Err(sqlx::Error::PoolTimedOut),
            _ => Err(sqlx::Error::Decode("a batch of logins failed".into())),
        };
        // The request may be gone; its login stands or falls with the batch.
        let _ = p.answer.send(result);
    }
}
