//! Throwaway PostgreSQL clusters for the tests: `initdb` + `pg_ctl` under a
//! temporary directory, on a free port of 127.0.0.1, run as an unprivileged
//! user when the tests run as root (PostgreSQL refuses root).
//!
//! [`shared`] is the one cluster of a test binary, started by the first test
//! that needs it; every test gets its own database in it
//! ([`PgCluster::create_database`]). Test binaries never run static
//! destructors, so each cluster comes with a watchdog shell that stops it and
//! deletes its directory once the test process is gone. [`PgCluster::start`]
//! gives a test a private cluster it may stop and start again.
//!
//! The server programs are looked up in `$TWOFACTOR_PG_BIN`, then
//! `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin` (Debian,
//! Ubuntu), then `initdb` on `PATH`. When there are none, the PostgreSQL tests
//! are skipped with one loud line on stderr, or fail if
//! `TWOFACTOR_TEST_REQUIRE_POSTGRES=1` (as in CI).
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AssertSqlSafe, Connection};
use tempfile::TempDir;

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
pub const BIN_ENV: &str = "TWOFACTOR_PG_BIN";
/// `1` turns a missing PostgreSQL into a failure instead of a skip.
pub const REQUIRE_ENV: &str = "TWOFACTOR_TEST_REQUIRE_POSTGRES";

/// How many times a start on a fresh free port is tried.
const START_ATTEMPTS: usize = 5;

/// The cluster shared by every test of this binary, started on first use;
/// `None` when PostgreSQL is not installed (and not required).
pub fn shared() -> Option<&'static PgCluster> {
    static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start).as_ref()
}

/// One running (or stopped) cluster; dropped → stopped and deleted.
pub struct PgCluster {
    /// Holds `data/`, the log and the Unix socket.
    dir: TempDir,
    bin: PathBuf,
    run_as: RunAs,
    port: u16,
    databases: AtomicU64,
    /// fsync on: commits are durable (benchmarks); off for tests' speed.
    durable: bool,
}

impl PgCluster {
    /// Initializes and starts a new cluster. `None` (after announcing the
    /// skip once) when no PostgreSQL programs are installed; panics if they
    /// are required (`TWOFACTOR_TEST_REQUIRE_POSTGRES=1`) or fail.
    pub fn start() -> Option<PgCluster> {
        PgCluster::start_with(false)
    }

    /// As [`start`](PgCluster::start), with `fsync=on`: what a benchmark of
    /// durable commits needs.
    pub fn start_durable() -> Option<PgCluster> {
        PgCluster::start_with(true)
    }

    fn start_with(durable: bool) -> Option<PgCluster> {
        let Some(bin) = find_binaries() else {
            skip_or_fail();
            return None;
        };
        let run_as = RunAs::detect();
        // The other user must reach the directory: $TMPDIR may be private.
        let parent = match run_as {
            RunAs::Me => std::env::temp_dir(),
            RunAs::User { .. } => PathBuf::from("/tmp"),
        };
        let dir = tempfile::Builder::new()
            .prefix("twofactor-pg-")
            .tempdir_in(parent)
            .expect("temp dir for the PostgreSQL cluster");
        if let RunAs::User { uid, gid, .. } = &run_as {
            std::os::unix::fs::chown(dir.path(), Some(*uid), Some(*gid))
                .expect("chown of the cluster directory");
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            run_as,
            port: 0,
            databases: AtomicU64::new(0),
            durable,
        };
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
            ])
            .output()
            .expect("running initdb");
        check(&out, "initdb");
        cluster.spawn_watchdog();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port();
            if cluster.try_start() {
                return Some(cluster);
            }
            last_log = cluster.log();
        }
        panic!(
            "PostgreSQL did not start after {START_ATTEMPTS} attempts on free ports; \
             server log:\n{last_log}"
        );
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: connections are cut).
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    /// Stops the cluster with a `pg_ctl` shutdown mode (smart, fast,
    /// immediate).
    pub fn stop_mode(&self, mode: &str) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "stop"])
            .output()
            .expect("running pg_ctl stop");
        check(&out, "pg_ctl stop");
    }

    /// Starts a stopped cluster again, on the same port and data directory.
    pub fn start_again(&self) {
        if !self.try_start() {
            panic!(
                "PostgreSQL did not start again on port {}; server log:\n{}",
                self.port,
                self.log()
            );
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (the superuser `postgres`, trusted).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of database `name` through the cluster's Unix socket (the
    /// temporary directory), as a client on the same host connects.
    pub fn socket_url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/{name}?host={}",
            self.port,
            self.dir.path().display()
        )
    }

    /// Creates a new empty database and returns its URL.
    pub async fn create_database(&self) -> String {
        self.url(&self.new_database().await)
    }

    /// Creates a new empty database and returns its name.
    pub async fn new_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("twofactor_test_{n}");
        self.admin(format!("CREATE DATABASE {name}")).await;
        name
    }

    /// Runs `sql` as the superuser on the `postgres` database.
    pub async fn admin(&self, sql: String) {
        let mut conn = sqlx::postgres::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
        sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }

    /// How many databases [`create_database`](Self::create_database) made.
    pub fn databases_created(&self) -> u64 {
        self.databases.load(Ordering::Relaxed)
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `pg_ctl -w start` on `self.port`; false if the server did not come up
    /// (e.g. the port was taken meanwhile).
    fn try_start(&self) -> bool {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=300",
            self.port,
            self.dir.path().display(),
            if self.durable { "on" } else { "off" }
        );
        // A benchmark's cluster also times the WAL's syncs and, when the
        // contrib module is installed, each statement, planning apart
        // (bench/postgres.rs).
        if self.durable {
            options += " -c track_wal_io_timing=on";
        }
        if self.durable && self.bin.join("../lib/pg_stat_statements.so").exists() {
            options += " -c shared_preload_libraries=pg_stat_statements \
                        -c pg_stat_statements.track_planning=on";
        }
        // More settings for a benchmark's cluster, e.g. `auto_explain`'s
        // (BENCHMARKS.md, the method).
        if let Some(extra) = std::env::var("TWOFACTOR_BENCH_PG_OPTIONS")
            .ok()
            .filter(|_| self.durable)
        {
            options += " ";
            options += &extra;
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("running pg_ctl start");
        out.status.success()
    }

    /// A PostgreSQL program, run as the right user, in the cluster directory.
    fn command(&self, program: &str) -> Command {
        let mut cmd = self.run_as.command(&self.bin.join(program));
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    /// A shell in its own process group that waits for this process to end
    /// (or for the cluster directory to vanish), then stops the cluster and
    /// deletes its directory. Never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    fn spawn_watchdog(&self) {
        let mut stop = self.run_as.command(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"]);
        let mut argv: Vec<String> = vec![stop.get_program().to_string_lossy().into_owned()];
        argv.extend(stop.get_args().map(|a| a.to_string_lossy().into_owned()));
        let script = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] && "$@" >/dev/null 2>&1
rm -rf "$dir""#;
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("twofactor-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .args(argv)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawning the cluster watchdog");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Who runs the PostgreSQL programs.
#[derive(Clone, Debug)]
enum RunAs {
    /// This process's user (not root).
    Me,
    /// An unprivileged account, through `runuser` (we are root).
    User { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> RunAs {
        if effective_uid() != 0 {
            return RunAs::Me;
        }
        for name in ["postgres", "nobody"] {
            if let (Some(uid), Some(gid)) = (id_of(name, "-u"), id_of(name, "-g")) {
                return RunAs::User {
                    name: name.to_string(),
                    uid,
                    gid,
                };
            }
        }
        panic!(
            "the tests run as root, which PostgreSQL refuses, and there is neither a \
             `postgres` nor a `nobody` user to run it as"
        );
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::User { name, .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", name, "--"]).arg(program);
                cmd
            }
        }
    }
}

fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .or_else(|| {
            let out = Command::new("id").arg("-u").output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        })
        .expect("the effective user id")
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The directory of `initdb`/`pg_ctl`, if PostgreSQL's server programs are
/// installed.
fn find_binaries() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        // An explicit choice: no guessing past it.
        let dir = PathBuf::from(dir);
        return has_initdb(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u64>> = name.split('.').map(|p| p.parse().ok()).collect();
            let bin = entry.path().join("bin");
            Some((version?, bin)).filter(|(_, bin)| has_initdb(bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let initdb = dir.join("initdb");
        if !initdb.is_file() {
            return None;
        }
        let real = initdb.canonicalize().unwrap_or(initdb);
        real.parent().map(Path::to_path_buf)
    })
}

/// No PostgreSQL: fail if it is required, else say loudly (once) that the
/// PostgreSQL tests are skipped.
fn skip_or_fail() {
    let why = match std::env::var_os(BIN_ENV) {
        Some(dir) => format!("no initdb in {BIN_ENV}={}", dir.to_string_lossy()),
        None => "no initdb found".to_string(),
    };
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "{REQUIRE_ENV}=1 but PostgreSQL is not available ({why}): install the \
             PostgreSQL server (Debian: apt-get install postgresql) or set {BIN_ENV} \
             to the directory holding initdb and pg_ctl"
        );
    }
    static ANNOUNCED: OnceLock<()> = OnceLock::new();
    ANNOUNCED.get_or_init(|| {
        // Straight to the process's stderr: libtest captures eprint!.
        let line = format!(
            "\n=== SKIPPED: PostgreSQL tests ({why}; install postgresql or set {BIN_ENV}) ===\n\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
}

/// A port the OS just reported free on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
