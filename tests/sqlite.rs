//! The integration suite (`tests/api/`) on SQLite: a fresh database file per
//! test. Nothing here is ever skipped.

const BACKEND: api::backend::Backend = api::backend::Backend::Sqlite;

mod api;
