//! Write transactions, and group commit on SQLite.
//!
//! On PostgreSQL a write transaction is a plain pooled transaction: the
//! server already overlaps the commits of concurrent connections.
//!
//! SQLite has one writer, and a commit is durable only after an fsync, so
//! committing every request on its own caps the service at one fsync per
//! request. Here each logical transaction is a SAVEPOINT inside a physical
//! transaction shared with the transactions queued behind it, and its
//! statements run in microseconds on the thread that holds the connection
//! ([`super::lite`]). There are two ways in:
//!
//! - [`Writer::transact`] queues the transaction's work, a closure, and
//!   whoever holds the connection runs every queued closure back to back
//!   ([`combine`]): the connection never waits for a task to be woken and
//!   scheduled between two transactions, which left it idle half the time
//!   under load. The hot paths (/login, /login-2fa) write this way.
//! - [`Writer::begin`] waits for the connection and holds it while the
//!   caller runs its statements ([`group`]), for writes that are easier to
//!   read as straight-line code.
//!
//! The physical COMMIT is issued by whoever releases the connection when
//! nobody else is waiting for it and nothing is queued, or when the group
//! is full; while the fsync of the group before runs, it waits for that
//! fsync to end (the group stays open for what comes meanwhile). It writes the group's pages to the WAL without an fsync
//! (`synchronous=NORMAL`; only when it starts the WAL over, after a
//! complete checkpoint, does SQLite sync the new WAL header, here), and the
//! connection passes at once to the next group. A transaction is answered
//! only after the WAL has been fsync'd by [`super::wal_sync`], so nothing is
//! acknowledged before it is on disk, while the next group runs beside that
//! fsync instead of behind it. A logical transaction that fails (or a
//! [`WriteTx`] dropped uncommitted) is rolled back to its savepoint without touching the others; if
//! the physical transaction itself fails, every transaction of the group
//! gets an error and none is acknowledged.

mod combine;
mod group;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;

use rusqlite::Connection;
use sqlx::{Any, AnyPool, Transaction};

use super::sql::Ex;
pub use group::Group;
use group::Held;

/// An open write transaction; pass `&mut *tx` to the `db` functions, then
/// [`commit`](WriteTx::commit). Dropping it rolls it back.
pub struct WriteTx {
    conn: Conn,
}

/// The connection of an open write transaction, as the `db` functions take it.
pub struct Conn {
    inner: Inner,
}

enum Inner {
    Pool(Transaction<'static, Any>),
    Group(Held),
    /// Lent to a queued transaction by whoever runs it ([`combine`]).
    Lent(Connection),
}

/// What [`Writer::transact`] runs: the statements of one transaction, over
/// the connection it is given. On SQLite it must never wait for anything
/// but the `db` functions, which finish without suspending: it runs on the
/// task that holds the connection, polled once.
pub type Work<T, E> = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send>;

/// A boxed future, as [`Work`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl WriteTx {
    /// Makes the transaction durable; on SQLite, returns once the group
    /// it joined has been committed to disk.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.conn.inner {
            Inner::Pool(tx) => tx.commit().await,
            Inner::Group(held) => held.commit().await,
            Inner::Lent(_) => unreachable!("a lent connection is never a WriteTx"),
        }
    }
}

impl Deref for WriteTx {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Conn {
    /// Where the `db` functions run their statements.
    pub(super) fn ex(&mut self) -> Ex<'_> {
        match &mut self.inner {
            Inner::Pool(tx) => Ex::AnyConn(tx),
            Inner::Group(held) => Ex::LiteConn(held.conn()),
            Inner::Lent(conn) => Ex::LiteConn(conn),
        }
    }
}

/// What the caller of a transaction whose work panicked (reported by the
/// panic hook) or, on SQLite, suspended gets.
fn work_failed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("a write transaction failed"))
}

/// Opens write transactions on PostgreSQL (a pool) or SQLite (group commit).
#[derive(Clone, Debug)]
pub enum Writer {
    /// Pooled transactions.
    Pool(AnyPool),
    /// Group commit over one connection.
    Group(Arc<Group>),
}

impl Writer {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let inner = match self {
            Writer::Pool(pool) => Inner::Pool(pool.begin().await?),
            Writer::Group(group) => Inner::Group(Group::begin(group).await?),
        };
        Ok(WriteTx {
            conn: Conn { inner },
        })
    }

    /// Runs `work` as one transaction: committed when it returns `Ok` (the
    /// value is returned once the commit is durable), rolled back when it
    /// returns `Err`. A caller that gives up waiting does not stop it.
    pub async fn transact<T, E>(&self, work: Work<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        match self {
            Writer::Pool(pool) => {
                // On a task of its own, so that it runs to its end as on
                // SQLite even if the caller stops waiting.
                let pool = pool.clone();
                let run = tokio::spawn(async move {
                    let mut tx = Writer::Pool(pool).begin().await?;
                    let value = work(&mut tx).await?;
                    tx.commit().await?;
                    Ok(value)
                });
                run.await.unwrap_or_else(|_| Err(work_failed().into()))
            }
            Writer::Group(group) => Group::transact(group, work).await,
        }
    }
}
