//! /login-2fa's write for an accepted TOTP code on PostgreSQL, batched
//! ([`super::batch`]): the logins waiting together go in one statement, one
//! transaction and one commit, each a row of `VALUES`.
//!
//! The statement does the general path's writes (`service::second_factor`'s
//! settlement, then the challenge and the session) for the whole batch,
//! each table once: the device's replay mark, the lockout counter, the
//! audit rows, the challenge, the session, each account's rows locked in
//! that path's order. It writes only the logins that path would accept;
//! any other login is left out and its caller runs the general path, which
//! gives the exact answer. Nothing of a login left out is written, except
//! its lockout counter's reset when its challenge was gone by then (the
//! general path would roll that back); only a concurrent success of the
//! same account, which resets the counter anyway, a challenge expiring in
//! the milliseconds since the read, or a challenge stored under its legacy
//! key (whose login the general path then completes, resetting it anyway)
//! can do that. On its own a login was a statement, a commit and its WAL
//! flush, each statement of it started anew inside PostgreSQL; batched, all
//! of those are shared (BENCHMARKS.md, session 17).

use std::sync::LazyLock;

use super::batch::{self, Batcher, Expected, Statement};
use super::parked::StatementPool;
use super::sessions::NewSession;
use super::sql::{Arg, Ex, Query, query};
use super::writer::BoxFuture;
use crate::auth::tokens::TokenKey;

/// What the write stores (see [`write`]).
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

/// Most logins in one statement. With one batch in flight at a time (one
/// worker), the logins that arrive during a batch's commit make the next
/// one, up to the 64 connections of the benchmark; two in flight gave no
/// more logins and a higher p99 (BENCHMARKS.md, session 17).
const MAX_BATCH: usize = 64;

/// The types of a login's row: its index, then the values of
/// [`TotpLogin`] and its session.
const TYPES: [&str; 15] = [
    "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BYTEA", "BYTEA",
    "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT",
];

/// One statement per padded batch size; a padding row has index -1. Each
/// step feeds the next, so the rows of an account are locked in the
/// general path's order (device, lockout counter, challenge) and a row
/// changed meanwhile is checked again once its lock is held:
/// - `fresh`: the logins whose device has not used this step; the devices
///   locked, in the order of the accounts' ids;
/// - `throttle`: their lockout counters cleared unless locked (as
///   `throttle::clear`), returning each counter's lock;
/// - `open`: those not locked out;
/// - `spent`: their challenges, if still live, deleted; by the current
///   key only (one index probe): a challenge of the layout before
///   time-ordered tokens (`auth::tokens`) is not found, so its login is
///   left out and the general path, which tries both keys, spends it;
/// - then, for the logins whose challenge was spent, the device's replay
///   mark, the audit rows and the session; the indexes of those logins
///   come back.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::padded(MAX_BATCH, |rows| {
        format!(
            "WITH k AS (SELECT * FROM (VALUES {}) \
               AS v(i, c, st, d, cf, now, sub, u, ch, s, pid, ca, ea, addr, ua) \
               WHERE i >= 0), \
             fresh AS (SELECT k.* FROM k JOIN totp_credentials cr ON cr.id = k.c \
               AND (cr.last_step IS NULL OR cr.last_step < k.st) \
               ORDER BY k.u FOR UPDATE OF cr), \
             throttle AS (UPDATE throttles t SET \
               failures = CASE WHEN t.locked_until > f.now THEN t.failures ELSE 0 END, \
               updated_at = CASE WHEN t.locked_until > f.now THEN t.updated_at ELSE f.now END \
               FROM fresh f WHERE t.subject = f.sub AND t.factor = 'second_factor' \
               RETURNING t.subject, t.locked_until), \
             open AS (SELECT f.* FROM fresh f WHERE NOT EXISTS (SELECT 1 FROM throttle t \
               WHERE t.subject = f.sub AND t.locked_until > f.now)), \
             spent AS (DELETE FROM mfa_challenges h USING open o \
               WHERE h.token_hash = o.ch AND h.user_id = o.u \
               AND h.expires_at > o.now RETURNING o.*), \
             device AS (UPDATE totp_credentials cr SET last_step = s.st, \
               drift_steps = s.d, last_used_at = s.now, confirmed_at = CASE \
                 WHEN s.cf = 1 THEN COALESCE(cr.confirmed_at, s.now) ELSE cr.confirmed_at END \
               FROM spent s WHERE cr.id = s.c), \
             audit AS (INSERT INTO audit_events \
               (at, username, user_id, event, detail, client_addr, user_agent) \
               SELECT s.now, s.sub, s.u, e.event, e.detail, s.addr, s.ua FROM spent s \
               CROSS JOIN (VALUES (0, 'second_factor.success', 'factor=totp'), \
                 (1, 'mfa.confirmed', NULL)) AS e(n, event, detail) \
               WHERE e.n = 0 OR s.cf = 1 ORDER BY s.i, e.n), \
             session AS (INSERT INTO sessions \
               (token_hash, public_id, user_id, created_at, expires_at, client_addr, user_agent) \
               SELECT s.s, s.pid, s.u, s.ca, s.ea, s.addr, s.ua FROM spent s) \
             SELECT s.i FROM spent s",
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
/// started, the challenge is gone (or is stored under its legacy key),
/// another login of the same account was in the batch, or the batch was
/// refused as a whole (a deadlock, say): the caller then runs the general
/// path, which gives the answer. `expected` is the login's place among those
/// announced by the batched read ([`super::batch::Coming`]), given up once
/// the login is queued.
pub async fn write(
    writes: &LoginWrites,
    l: &TotpLogin<'_>,
    expected: Option<Expected>,
) -> Result<bool, sqlx::Error> {
    let s = l.session;
    writes
        .ask_expected(
            Pending {
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
                session: s.key.to_vec(),
                public_id: s.public_id.to_owned(),
                created_at: s.now,
                expires_at: s.expires_at,
                client_addr: s.client_addr.map(str::to_owned),
                user_agent: s.user_agent.map(str::to_owned),
            },
            expected,
        )
        .await
}

impl Statement for WriteLogins {
    type Item = Pending;
    type Answer = bool;
    const MAX: usize = MAX_BATCH;
    const WORKERS: usize = 1;

    fn statements() -> &'static [String] {
        &BATCH_SQL
    }

    fn pad(q: Query<'_>) -> Query<'_> {
        let mut q = q.bind(-1i64);
        for ty in &TYPES[1..] {
            q = q.bind(match *ty {
                "TEXT" => Arg::Text(None),
                "BYTEA" => Arg::Blob(None),
                _ => Arg::Int(None),
            });
        }
        q
    }

    fn run<'a>(
        &'a self,
        pool: &'a StatementPool,
        items: &'a [Pending],
    ) -> BoxFuture<'a, Result<Vec<bool>, sqlx::Error>> {
        Box::pin(async move {
            // Rows in the order of the accounts' ids (as the statement
            // locks them), each keeping its login's index.
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by_key(|&i| items[i].user_id);
            // One login per account: a second one of the batch takes the
            // general path once this one is committed.
            order.dedup_by_key(|i| items[*i].user_id);
            let (sql, padding) = batch::pick::<Self>(order.len());
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
                    .bind(&p.session)
                    .bind(p.public_id.as_str())
                    .bind(p.created_at)
                    .bind(p.expires_at)
                    .bind(p.client_addr.as_deref())
                    .bind(p.user_agent.as_deref());
            }
            for _ in 0..padding {
                q = Self::pad(q);
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
            // A row for each login written, none for those left out.
            let mut written = vec![false; items.len()];
            for row in &rows {
                let i: i64 = row.try_get(0)?;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| written.get_mut(i)) {
                    *slot = true;
                }
            }
            Ok(written)
        })
    }
}
