//! The SQLite and PostgreSQL migrations carry the same versions.

use std::collections::BTreeSet;
use std::path::Path;

fn file_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .collect()
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_file_names() {
    let sqlite = file_names("sqlite");
    let postgres = file_names("postgres");
    assert!(!sqlite.is_empty(), "no SQLite migrations");
    assert!(
        sqlite.iter().all(|name| name.ends_with(".sql")),
        "a migration that is not .sql: {sqlite:?}"
    );
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres differ"
    );
}
