//! Session lookups on PostgreSQL, batched ([`super::batch`]): every request
//! that carries a bearer token looks its session up, and on its own each
//! lookup was a round trip, a wake-up of a backend and of the server; this
//! is what kept /me at a quarter of the /healthz ceiling (BENCHMARKS.md,
//! session 15).

use std::sync::LazyLock;

use super::batch::{self, Batcher, Statement};
use super::parked::StatementPool;
use super::sessions::{self, SessionUser};
use super::sql::{Ex, Query, query};
use super::writer::BoxFuture;

/// Most lookups in one statement.
const MAX_BATCH: usize = 64;

/// One statement per padded batch size: each lookup is a row of
/// `VALUES (index, key, now)`; a padding row has a key no token has.
static BATCH_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::padded(MAX_BATCH, |rows| {
        format!(
            "SELECT k.i, {} FROM (VALUES {}) AS k(i, h, now) \
             JOIN sessions s ON s.token_hash = k.h AND s.expires_at > k.now \
             JOIN users u ON u.id = s.user_id",
            sessions::SESSION_USER_COLUMNS,
            batch::values(&["BIGINT", "BYTEA", "BIGINT"], rows)
        )
    })
});

/// A lookup: the token's key, and now.
pub struct Lookup {
    key: Vec<u8>,
    now: i64,
}

/// The statement of the batched lookups.
pub struct FindLive;

/// The way into the batched lookups; cheap to clone.
pub type SessionReads = Batcher<FindLive>;

/// Starts the batched lookups over `pool`.
pub fn start(pool: StatementPool) -> SessionReads {
    Batcher::start(FindLive, pool)
}

/// The live session whose token has key `key` at `now`.
pub async fn find(
    reads: &SessionReads,
    key: &[u8],
    now: i64,
) -> Result<Option<SessionUser>, sqlx::Error> {
    reads
        .ask(Lookup {
            key: key.to_vec(),
            now,
        })
        .await
}

impl Statement for FindLive {
    type Item = Lookup;
    type Answer = Option<SessionUser>;
    const MAX: usize = MAX_BATCH;
    const GATHER: bool = true;

    fn statements() -> &'static [String] {
        &BATCH_SQL
    }

    fn pad(q: Query<'_>) -> Query<'_> {
        q.bind(-1i64).bind(&[][..]).bind(0i64)
    }

    fn run<'a>(
        &'a self,
        pool: &'a StatementPool,
        items: &'a [Lookup],
    ) -> BoxFuture<'a, Result<Vec<Option<SessionUser>>, sqlx::Error>> {
        Box::pin(async move {
            let (sql, padding) = batch::pick::<Self>(items.len());
            let mut q = query(sql);
            for (i, lookup) in items.iter().enumerate() {
                q = q.bind(i as i64).bind(&lookup.key).bind(lookup.now);
            }
            for _ in 0..padding {
                q = Self::pad(q);
            }
            let rows = q.fetch_all(Ex::AnyPool(pool)).await?;
            let mut found: Vec<Option<SessionUser>> = items.iter().map(|_| None).collect();
            for row in &rows {
                let i: i64 = row.try_get(0)?;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| found.get_mut(i)) {
                    *slot = Some(sessions::session_user(row, 1)?);
                }
            }
            Ok(found)
        })
    }
}
