//! /login-2fa's read on PostgreSQL, batched ([`super::batch`]): the
//! challenge, the account's devices, its unused recovery codes and its lock
//! ([`credentials::counting_for_challenge`]) for the logins waiting
//! together, in one statement. With the write batched too
//! ([`super::login_write`]), a login shares both of its round trips. Each
//! login found is announced to the write ([`super::batch::Coming`]) before
//! the answers go, so the write's worker waits for the whole batch's logins
//! instead of committing the first one to pass its code check alone (a
//! quarter of the write batches were one login; BENCHMARKS.md, session 20).

use std::sync::LazyLock;

use std::sync::Arc;

use super::batch::{self, Batcher, Coming, Expected, Statement};
use super::credentials::{self, Counting};
use super::parked::StatementPool;
use super::sql::{Ex, Query, query};
use super::writer::BoxFuture;
use crate::auth::lockout::Factor;

/// Most reads in one statement, one batch in flight at a time, as for the
/// write ([`super::login_write`]).
const MAX_BATCH: usize = 64;

/// The column of a row's index, after [`credentials::counted`]'s.
const INDEX: usize = 17;

/// One statement per padded batch size; a padding row has a key no
/// challenge has.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::padded(MAX_BATCH, |rows| {
        let [before, after] = credentials::FOR_CHALLENGES;
        let values = batch::values(&["BIGINT", "BYTEA", "TEXT", "BIGINT", "TEXT"], rows);
        format!("{before}{values}{after}")
    })
});

/// A read: the challenge's key, the username it must have been issued
/// for, and now.
pub struct Read {
    key: Vec<u8>,
    username_key: String,
    now: i64,
}

/// The statement of the batched reads; each login found is announced to
/// the batched write (`coming`) as its answer goes.
pub struct ReadChallenges {
    coming: Arc<Coming>,
}

/// The way into the batched reads; cheap to clone.
pub type ChallengeReads = Batcher<ReadChallenges>;

/// Starts the batched reads over `pool`, announcing the logins found to
/// `coming` (the batched write's).
pub fn start(pool: StatementPool, coming: Arc<Coming>) -> ChallengeReads {
    Batcher::start(ReadChallenges { coming }, pool)
}

/// [`credentials::counting_for_challenge`], in the next batch.
pub async fn find(
    reads: &ChallengeReads,
    key: &[u8],
    username_key: &str,
    now: i64,
) -> Result<Option<(i64, Counting, Option<Expected>)>, sqlx::Error> {
    reads
        .ask(Read {
            key: key.to_vec(),
            username_key: username_key.to_owned(),
            now,
        })
        .await
}

impl Statement for ReadChallenges {
    type Item = Read;
    type Answer = Option<(i64, Counting, Option<Expected>)>;
    const MAX: usize = MAX_BATCH;
    const WORKERS: usize = 1;

    fn statements() -> &'static [String] {
        &BATCH_SQL
    }

    fn pad(q: Query<'_>) -> Query<'_> {
        q.bind(-1i64)
            .bind(&[][..])
            .bind("")
            .bind(0i64)
            .bind(Factor::SecondFactor.as_str())
    }

    fn run<'a>(
        &'a self,
        pool: &'a StatementPool,
        items: &'a [Read],
    ) -> BoxFuture<'a, Result<Vec<Self::Answer>, sqlx::Error>> {
        Box::pin(async move {
            let factor = Factor::SecondFactor.as_str();
            let (sql, padding) = batch::pick::<Self>(items.len());
            let mut q = query(sql);
            for (i, read) in items.iter().enumerate() {
                q = q
                    .bind(i as i64)
                    .bind(&read.key)
                    .bind(read.username_key.as_str())
                    .bind(read.now)
                    .bind(factor);
            }
            for _ in 0..padding {
                q = Self::pad(q);
            }
            let rows = q.fetch_all(Ex::AnyPool(pool)).await?;
            let mut found: Vec<Self::Answer> = items.iter().map(|_| None).collect();
            // The rows come ordered by index: one run of rows per read.
            let mut start = 0;
            while start < rows.len() {
                let i: i64 = rows[start].try_get(INDEX)?;
                let mut end = start + 1;
                while end < rows.len() && rows[end].try_get::<i64>(INDEX)? == i {
                    end += 1;
                }
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| found.get_mut(i)) {
                    *slot = credentials::counted(&rows[start..end])?
                        .map(|(user_id, counting)| (user_id, counting, Some(self.coming.expect())));
                }
                start = end;
            }
            Ok(found)
        })
    }
}
