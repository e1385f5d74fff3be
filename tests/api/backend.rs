//! Which database a test binary runs the suite against.

/// Set once per test binary, as `crate::BACKEND` (tests/sqlite.rs,
/// tests/postgres.rs).
#[allow(dead_code)] // each binary uses one variant
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file per test.
    Sqlite,
    /// A fresh database per test in a throwaway PostgreSQL cluster shared by
    /// the test binary (see `pg.rs`).
    Postgres,
}

/// The backend of this test binary.
pub fn current() -> Backend {
    crate::BACKEND
}
