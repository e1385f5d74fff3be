//! /login-2fa's write for an accepted TOTP code on PostgreSQL, batched
//! ([`super::batch`]): the logins waiting together go in one statement, one
//! transaction and one commit.
//!
//! Each login is a row of `VALUES`, passed to `login_2fa_totp_try`
//! (migration 0009), which runs `login_2fa_totp` (migration 0008: the
//! general path's statements in their order) in a subtransaction of its
//! own; a login the general path would refuse is undone alone and reported
//! as not written. On its own a login was a round trip and a commit with
//! its WAL flush; batched, those are shared (BENCHMARKS.md, session 17).

use std::sync::LazyLock;

use super::batch::{self, Batcher, Statement};
use super::parked::StatementPool;
use super::sessions::NewSession;
use super::sql::{Arg, Ex, query};
use super::writer::BoxFuture;
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
/// sessions' snapshots get slower.
const MAX_BATCH: usize = 32;

/// The types of a login's row: its index, then `login_2fa_totp_try`'s
/// parameters.
const TYPES: [&str; 16] = [
    "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BYTEA", "BYTEA",
    "BYTEA", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT",
];

/// One statement per padded batch size; a padding row has index -1 and is
/// filtered out before the function is called.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::padded(MAX_BATCH, |rows| {
        format!(
            "SELECT k.i, login_2fa_totp_try(k.c, k.st, k.d, k.cf, k.now, k.sub, k.u, \
             k.ch, k.chl, k.s, k.pid, k.ca, k.ea, k.addr, k.ua) \
             FROM (VALUES {}) \
             AS k(i, c, st, d, cf, now, sub, u, ch, chl, s, pid, ca, ea, addr, ua) \
             WHERE k.i >= 0",
            batch::values(&TYPES, rows)
        )
    })
});

/// A login waiting for its batch: [`TotpLogin`]'s values, owned.
pub struct Pending {
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
}

/// The statement of the batched logins.
pub struct WriteLogins;

/// The way into the batched logins; cheap to clone.
pub type LoginWrites = Batcher<WriteLogins>;

/// Starts the batched logins over `pool`.
pub fn start(pool: StatementPool) -> LoginWrites {
    Batcher::start(WriteLogins, pool)
}

/// Stores the login: `Ok(true)` once it is committed; `Ok(false)` when
/// nothing of it was written, because the code was used meanwhile, a lock
/// started, the challenge is gone, or its batch was refused as a whole (a
/// deadlock, say): the caller then runs the general path, which gives the
/// answer.
pub async fn write(writes: &LoginWrites, l: &TotpLogin<'_>) -> Result<bool, sqlx::Error> {
    let s = l.session;
    writes
        .ask(Pending {
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
        })
        .await
}

impl Statement for WriteLogins {
    type Item = Pending;
    type Answer = bool;
    const MAX: usize = MAX_BATCH;

    fn run<'a>(
        &'a self,
        pool: &'a StatementPool,
        items: &'a [Pending],
    ) -> BoxFuture<'a, Result<Vec<bool>, sqlx::Error>> {
        Box::pin(async move {
            // Every batch takes its accounts' rows in the order of their
            // ids, so two batches in flight that share accounts wait for
            // each other instead of deadlocking; each row keeps its
            // login's index.
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by_key(|&i| items[i].user_id);
            let (sql, padding) = batch::pick(&BATCH_SQL, items.len());
            let mut q = query(sql);
            for i in order {
                let p = &items[i];
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
            for _ in 0..padding {
                q = q.bind(-1i64);
                for ty in &TYPES[1..] {
                    q = q.bind(match *ty {
                        "TEXT" => Arg::Text(None),
                        "BYTEA" => Arg::Blob(None),
                        _ => Arg::Int(None),
                    });
                }
            }
            let rows = match q.fetch_all(Ex::AnyPool(pool)).await {
                Ok(rows) => rows,
                // The database refused the statement, so it undid all of
                // it: each login runs the general path.
                Err(e @ sqlx::Error::Database(_)) if !super::is_unavailable(&e) => {
                    tracing::warn!(error = %e, logins = items.len(),
                        "a batch of logins was refused; each runs on its own");
                    return Ok(vec![false; items.len()]);
                }
                Err(e) => return Err(e),
            };
            let mut written = vec![false; items.len()];
            for row in &rows {
                let i: i64 = row.try_get(0)?;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| written.get_mut(i)) {
                    *slot = row.try_get::<i64>(1)? == 1;
                }
            }
            Ok(written)
        })
    }
}
