//! One statement API over both backends, so each query in `db` is written
//! once: `query(SQL).bind(..).fetch_optional(ex)`, shaped like sqlx's.
//!
//! On PostgreSQL a statement goes through sqlx (its `Any` driver over the
//! pool or a pooled transaction). On SQLite it runs on a rusqlite
//! connection, on the calling thread ([`super::lite`]): sqlx's SQLite driver
//! sends every statement to a thread of its own and back, which costs more
//! than the statement itself (45 µs idle, about 85 µs under load, against a
//! few µs for an indexed read from the page cache).

use sqlx::Any;
use sqlx::any::AnyRow;

use super::lite::{self, LitePool};
use super::parked::StatementPool;
use super::writer::{Conn, WriteTx};

/// A value bound to a `$n` placeholder. Nulls keep their type, which
/// PostgreSQL needs to type the parameter. No `Debug`: the values are
/// token hashes, password hashes and sealed secrets, never to be logged.
#[derive(Clone, Copy)]
pub enum Arg<'q> {
    /// An integer (`BIGINT` / `INTEGER`).
    Int(Option<i64>),
    /// A string (`TEXT`).
    Text(Option<&'q str>),
    /// Bytes (`BYTEA` / `BLOB`).
    Blob(Option<&'q [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'q> From<&'q str> for Arg<'q> {
    fn from(v: &'q str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'q> From<&'q String> for Arg<'q> {
    fn from(v: &'q String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'q> From<Option<&'q str>> for Arg<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Arg::Text(v)
    }
}

impl<'q> From<&'q [u8]> for Arg<'q> {
    fn from(v: &'q [u8]) -> Self {
        Arg::Blob(Some(v))
    }
}

impl<'q> From<&'q Vec<u8>> for Arg<'q> {
    fn from(v: &'q Vec<u8>) -> Self {
        Arg::Blob(Some(v))
    }
}

/// A statement and its arguments (`$1` is the first bound).
#[must_use = "a query does nothing until executed"]
pub struct Query<'q> {
    sql: &'static str,
    args: Vec<Arg<'q>>,
}

/// Starts a statement. The text is a literal: SQL is never built from
/// request values, which are always bound.
pub fn query<'q>(sql: &'static str) -> Query<'q> {
    Query {
        sql,
        args: Vec::with_capacity(8),
    }
}

/// What an executed statement changed.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    rows: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// Where a statement runs: the read pool, or an open write transaction.
pub enum Ex<'e> {
    /// PostgreSQL's pool, for one statement outside a transaction.
    AnyPool(&'e StatementPool),
    /// A PostgreSQL transaction.
    AnyConn(&'e mut sqlx::AnyConnection),
    /// SQLite's readers.
    LitePool(&'e LitePool),
    /// SQLite's writer, inside a transaction.
    LiteConn(&'e mut rusqlite::Connection),
}

impl Ex<'_> {
    /// The same handle for one more statement.
    pub fn reborrow(&mut self) -> Ex<'_> {
        match self {
            Ex::AnyPool(pool) => Ex::AnyPool(pool),
            Ex::AnyConn(conn) => Ex::AnyConn(conn),
            Ex::LitePool(pool) => Ex::LitePool(pool),
            Ex::LiteConn(conn) => Ex::LiteConn(conn),
        }
    }
}

/// Something statements can run on: `db.reader()` or `&mut *tx`.
pub trait Executor<'e> {
    /// The backend's handle.
    fn into_ex(self) -> Ex<'e>;
}

impl<'e> Executor<'e> for Ex<'e> {
    fn into_ex(self) -> Ex<'e> {
        self
    }
}

impl<'e> Executor<'e> for &'e mut Conn {
    fn into_ex(self) -> Ex<'e> {
        self.ex()
    }
}

impl<'e> Executor<'e> for &'e mut WriteTx {
    fn into_ex(self) -> Ex<'e> {
        (**self).ex()
    }
}

impl<'q> Query<'q> {
    /// Binds the next `$n`.
    pub fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    fn to_sqlx(&self) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(self.sql);
        for arg in &self.args {
            q = match *arg {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Blob(v) => q.bind(v),
            };
        }
        q
    }

    /// Runs a statement that returns no rows.
    pub async fn execute<'e>(self, ex: impl Executor<'e>) -> Result<Done, sqlx::Error> {
        let rows = match ex.into_ex() {
            Ex::AnyPool(pool) => {
                let mut lease = pool.lease().await?;
                let done = self.to_sqlx().execute(lease.conn()).await;
                lease.settle(&done);
                done?.rows_affected()
            }
            Ex::AnyConn(conn) => self.to_sqlx().execute(conn).await?.rows_affected(),
            Ex::LitePool(pool) => pool.with(|c| lite::run(c, self.sql, &self.args, |_| Ok(())))?,
            Ex::LiteConn(conn) => {
                lite::in_tx(conn, |c| lite::run(c, self.sql, &self.args, |_| Ok(())))?
            }
        };
        Ok(Done { rows })
    }

    /// Every row.
    pub async fn fetch_all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<Row>, sqlx::Error> {
        let any = |rows: Vec<AnyRow>| rows.into_iter().map(Row::Any).collect();
        Ok(match ex.into_ex() {
            Ex::AnyPool(pool) => {
                let mut lease = pool.lease().await?;
                let rows = self.to_sqlx().fetch_all(lease.conn()).await;
                lease.settle(&rows);
                any(rows?)
            }
            Ex::AnyConn(conn) => any(self.to_sqlx().fetch_all(conn).await?),
            Ex::LitePool(pool) => pool.with(|c| self.lite_rows(c))?,
            Ex::LiteConn(conn) => lite::in_tx(conn, |c| self.lite_rows(c))?,
        })
    }

    /// The first row, if any.
    pub async fn fetch_optional<'e>(
        self,
        ex: impl Executor<'e>,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match ex.into_ex() {
            Ex::AnyPool(pool) => {
                let mut lease = pool.lease().await?;
                let row = self.to_sqlx().fetch_optional(lease.conn()).await;
                lease.settle(&row);
                row?.map(Row::Any)
            }
            Ex::AnyConn(conn) => self.to_sqlx().fetch_optional(conn).await?.map(Row::Any),
            Ex::LitePool(pool) => pool.with(|c| self.lite_rows(c))?.into_iter().next(),
            Ex::LiteConn(conn) => lite::in_tx(conn, |c| self.lite_rows(c))?.into_iter().next(),
        })
    }

    /// The first row; `RowNotFound` without one.
    pub async fn fetch_one<'e>(self, ex: impl Executor<'e>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(ex)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    fn lite_rows(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Row>> {
        let mut rows = Vec::new();
        lite::run(conn, self.sql, &self.args, |row| {
            rows.push(Row::Lite(lite::values(row)?));
            Ok(())
        })?;
        Ok(rows)
    }
}

/// A column value read from SQLite.
#[derive(Clone, Debug)]
pub enum Value {
    /// NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL (no column of ours; kept so a read never fails on it).
    Real(f64),
    /// TEXT.
    Text(String),
    /// BLOB.
    Blob(Vec<u8>),
}

/// A result row of either backend; columns are read by position.
pub enum Row {
    /// From PostgreSQL.
    Any(AnyRow),
    /// From SQLite.
    Lite(Vec<Value>),
}

impl Row {
    /// Column `index` as a `T`.
    pub fn try_get<T: Column>(&self, index: usize) -> Result<T, sqlx::Error> {
        match self {
            Row::Any(row) => sqlx::Row::try_get(row, index),
            Row::Lite(values) => {
                let value = values
                    .get(index)
                    .ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                        index,
                        len: values.len(),
                    })?;
                T::from_lite(value).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: index.to_string(),
                    source: format!("unexpected SQLite value for {}", T::NAME).into(),
                })
            }
        }
    }
}

/// A Rust type a column can be read as.
pub trait Column: Sized + sqlx::Type<Any> + for<'r> sqlx::Decode<'r, Any> {
    /// For error messages.
    const NAME: &'static str;
    /// From an SQLite value (`None`: wrong type).
    fn from_lite(value: &Value) -> Option<Self>;
}

impl Column for i64 {
    const NAME: &'static str = "an integer";
    fn from_lite(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl Column for String {
    const NAME: &'static str = "a string";
    fn from_lite(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl Column for Vec<u8> {
    const NAME: &'static str = "bytes";
    fn from_lite(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: Column> Column for Option<T> {
    const NAME: &'static str = T::NAME;
    fn from_lite(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_lite(v).map(Some),
        }
    }
}
