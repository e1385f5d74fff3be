//! The integration suite (`tests/api/`) on PostgreSQL: a throwaway cluster
//! (`initdb` + `pg_ctl`, see `tests/api/pg.rs`) started once for this binary,
//! a fresh database per test. Without PostgreSQL's server programs every test
//! returns early after one loud `=== SKIPPED ===` line on stderr, unless
//! `TWOFACTOR_TEST_REQUIRE_POSTGRES=1` makes that a failure.

const BACKEND: api::backend::Backend = api::backend::Backend::Postgres;

mod api;
