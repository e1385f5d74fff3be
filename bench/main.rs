//! `bench/run`: the release server under load. For each backend (SQLite;
//! PostgreSQL when its server programs are installed) it seeds accounts
//! through the API on a server with a cheap argon2 cost, restarts the
//! server with the defaults, and drives it with wrk:
//!
//! 1. `GET /healthz`, the in-run ceiling every scenario is compared with;
//! 2. `POST /login-2fa` successes: distinct users, fresh mfa_tokens, valid codes;
//! 3. `GET /me` with valid session tokens;
//!
//! these three in turn, in several rounds of short slices, so that the
//! shared machine's drift (its speed moves by 20% within a minute) weighs on
//! all three alike; then
//!
//! 4. a `/login` flood at the default argon2 cost, with /healthz sampled on
//!    one more connection and the server's peak RSS read from /proc.
//!
//! It prints one Markdown table (the one in BENCHMARKS.md).

#[path = "../tests/api/pg.rs"]
mod pg;

mod disk;
mod load;
mod postgres;
mod seed;
mod server;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;

use load::{Load, Report};
use server::Server;

/// Flags of `bench/run`.
#[derive(Parser, Debug)]
struct Args {
    /// MFA accounts seeded for the /login-2fa scenario (each logs in once;
    /// each round gets its share).
    #[arg(long, default_value_t = 150_000)]
    users: usize,
    /// Accounts without MFA whose sessions /me cycles through.
    #[arg(long, default_value_t = 1_000)]
    sessions: usize,
    /// Seconds per slice of a scenario (a round's login-2fa bodies are
    /// written just before its slice, so their codes are fresh; at about
    /// 15k logins/s, a 2 s slice uses 30,000 of a round's 50,000 accounts).
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// Rounds of /healthz, /login-2fa and /me slices, one after the other.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Connections of the scenarios.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Connections of the /login flood.
    #[arg(long, default_value_t = 256)]
    flood_connections: u32,
    /// `sqlite`, `postgres` or `all` (PostgreSQL only when installed).
    #[arg(long, default_value = "all")]
    backend: String,
    /// The server binary.
    #[arg(long, default_value = "target/release/twofactor")]
    bin: PathBuf,
    /// Record each scenario with `perf record -g -a` (the whole machine)
    /// into OUT/BACKEND/*.perf.data.
    #[arg(long)]
    perf: bool,
    /// Connect the server to PostgreSQL over TCP (127.0.0.1), as from
    /// another machine, instead of through the cluster's Unix socket, as a
    /// server on the same machine would.
    #[arg(long)]
    postgres_tcp: bool,
    /// Where data directories and server logs go.
    #[arg(long, default_value = "target/bench-run")]
    out: PathBuf,
}

/// Argon2 cost of the seeding server only; the measured server uses the defaults.
const CHEAP_ARGON2: [&str; 4] = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/wrk.lua");
    let bin = std::path::absolute(&args.bin)?;
    let mut rows = Vec::new();
    if matches!(args.backend.as_str(), "sqlite" | "all") {
        let dir = server::fresh_dir(&args.out, "sqlite")?;
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let disks = disk::devices_of(&[&dir]);
        rows.push((
            "SQLite",
            run_backend(&args, &bin, &script, &dir, &url, &disks).await?,
        ));
    }
    if matches!(args.backend.as_str(), "postgres" | "all") {
        match pg::PgCluster::start_durable() {
            Some(cluster) => {
                let dir = server::fresh_dir(&args.out, "postgres")?;
                let name = cluster.new_database().await;
                let url = if args.postgres_tcp {
                    cluster.url(&name)
                } else {
                    cluster.socket_url(&name)
                };
                // The cluster lives under /tmp (or $TMPDIR): pg.rs.
                let disks = disk::devices_of(&[&dir, Path::new("/tmp"), &std::env::temp_dir()]);
                let figures = run_backend(&args, &bin, &script, &dir, &url, &disks).await;
                std::fs::write(dir.join("postgres.log"), cluster.log())
                    .context("copying PostgreSQL's log")?;
                rows.push(("PostgreSQL", figures?));
            }
            None => eprintln!("bench: PostgreSQL is not installed; SQLite only"),
        }
    }
    print_table(&args, &rows);
    Ok(())
}

/// Everything measured on one backend.
struct Figures {
    ceiling: Report,
    login_2fa: Report,
    me: Report,
    /// Each round's slices: /healthz, /login-2fa, /me.
    rounds: Vec<[Report; 3]>,
    flood: Report,
    flood_healthz: Report,
    peak_rss_mib: f64,
    /// Whether any disk under the data was found to watch for stalls.
    disks_watched: bool,
}

async fn run_backend(
    args: &Args,
    bin: &Path,
    script: &Path,
    dir: &Path,
    url: &str,
    disks: &[disk::Device],
) -> anyhow::Result<Figures> {
    let key = dir.join("encryption.key");
    let log = dir.join("server.log");
    eprintln!(
        "bench: seeding {} MFA accounts and {} sessions ({url})",
        args.users, args.sessions
    );
    let started = std::time::Instant::now();
    let seeding = Server::start(bin, url, &key, &log, &CHEAP_ARGON2)?;
    let seeded = seed::run(&seeding.url, args.users, args.sessions).await?;
    seeding.stop()?;
    let wal_start = if url.starts_with("postgres") {
        Some(postgres::settle(url).await?)
    } else {
        None
    };
    eprintln!("bench: seeded in {:.1} s", started.elapsed().as_secs_f64());
    let server = Server::start(bin, url, &key, &log, &[])?;
    let load = |method, path, connections, env| Load {
        url: &server.url,
        method,
        path,
        connections,
        threads: 2,
        seconds: args.seconds,
        env,
    };
    let profiled = |name: &str, load: Load| -> anyhow::Result<Report> {
        let perf = args
            .perf
            .then(|| profile(&dir.join(format!("{name}.perf.data"))));
        let cpu = server.cpu_seconds()?;
        let db_cpu = server::postgres_cpu_seconds();
        let disk = server.disk_bytes()?;
        let machine = server::machine_ticks();
        let watch = disk::Watch::start(disks.to_vec());
        let report = load.run(script);
        let disk_stalls = watch.stop();
        let machine_after = server::machine_ticks();
        if let Some(perf) = perf {
            stop_profile(perf?)?;
        }
        let mut report = report?;
        report.server_cpu = server.cpu_seconds()? - cpu;
        report.db_cpu = server::postgres_cpu_seconds() - db_cpu;
        report.server_disk = server.disk_bytes()? - disk;
        report.machine = (machine_after.0 - machine.0, machine_after.1 - machine.1);
        report.disk_stalls = disk_stalls;
        Ok(report)
    };
    let tokens = dir.join("sessions.txt");
    std::fs::write(&tokens, seeded.sessions.join("\n") + "\n").context("writing the tokens")?;
    let bodies = dir.join("login-2fa.jsonl");
    anyhow::ensure!(
        args.users > 0 && args.rounds > 0,
        "needs --users and --rounds above 0"
    );
    let share = seeded.pending.len().div_ceil(args.rounds);
    let (mut ceiling, mut login_2fa, mut me) = Default::default();
    let mut rounds = Vec::new();
    for (round, pending) in (1..).zip(seeded.pending.chunks(share)) {
        eprintln!(
            "bench: round {round}: GET /healthz, POST /login-2fa, GET /me ({} s each)",
            args.seconds
        );
        let h = profiled(
            &format!("healthz-{round}"),
            load("GET", "/healthz", args.connections, vec![]),
        )?;
        // The code of the current step, valid for at least 30 s more.
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let lines: Vec<String> = pending.iter().map(|p| p.body(now)).collect();
        std::fs::write(&bodies, lines.join("\n") + "\n").context("writing the bodies")?;
        let env = vec![("BENCH_BODIES", bodies.display().to_string())];
        let l = profiled(
            &format!("login-2fa-{round}"),
            load("POST", "/login-2fa", args.connections, env),
        )?;
        let env = vec![("BENCH_TOKENS", tokens.display().to_string())];
        let m = profiled(
            &format!("me-{round}"),
            load("GET", "/me", args.connections, env),
        )?;
        Report::add(&mut ceiling, &h);
        Report::add(&mut login_2fa, &l);
        Report::add(&mut me, &m);
        rounds.push([h, l, m]);
    }
    // Each scenario's percentiles are the median round's.
    for (i, merged) in [&mut ceiling, &mut login_2fa, &mut me]
        .into_iter()
        .enumerate()
    {
        merged.p50_us = median(rounds.iter().map(|r| r[i].p50_us));
        merged.p99_us = median(rounds.iter().map(|r| r[i].p99_us));
    }

    if let Some(wal_start) = &wal_start {
        postgres::stats(url, wal_start, &dir.join("postgres-stats.txt")).await?;
    }
    eprintln!("bench: POST /login flood at the default argon2 cost");
    let client = reqwest::Client::new();
    seed::signup(&client, &server.url, "bench_flood", false).await?;
    let body =
        serde_json::json!({"username": "bench_flood", "password": seed::PASSWORD}).to_string();
    let flood_env = vec![("BENCH_BODY", body), ("BENCH_STATUSES", "1".to_owned())];
    let cpu = server.cpu_seconds()?;
    // As long as the rounds of one scenario took, in one go.
    let flood_seconds = args.seconds * u32::try_from(rounds.len()).unwrap_or(1);
    let flood = Load {
        seconds: flood_seconds,
        ..load("POST", "/login", args.flood_connections, flood_env)
    }
    .spawn(script)?;
    // The probe samples every 5 ms rather than loading the server itself.
    let probe_env = vec![("BENCH_DELAY_MS", "5".to_owned())];
    let probe = Load {
        threads: 1,
        seconds: flood_seconds,
        ..load("GET", "/healthz", 1, probe_env)
    }
    .spawn(script)?;
    let mut flood = load::finish(flood)?;
    let flood_healthz = load::finish(probe)?;
    flood.server_cpu = server.cpu_seconds()? - cpu;
    let peak_rss_mib = server.peak_rss_mib()?;
    server.stop()?;
    Ok(Figures {
        ceiling,
        login_2fa,
        me,
        rounds,
        flood,
        flood_healthz,
        peak_rss_mib,
        disks_watched: !disks.is_empty(),
    })
}

/// Starts `perf record` on the whole machine: the server, wrk and
/// PostgreSQL's processes share its cores (`perf report --sort comm`).
fn profile(out: &Path) -> anyhow::Result<std::process::Child> {
    std::process::Command::new("perf")
        .args(["record", "-F", "4999", "-g", "-q", "-a", "-o"])
        .arg(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf (apt-get install linux-perf)")
}

fn stop_profile(mut perf: std::process::Child) -> anyhow::Result<()> {
    std::process::Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()?;
    perf.wait()?;
    Ok(())
}

/// The middle value (the upper one of an even count).
fn median(values: impl Iterator<Item = u64>) -> u64 {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Scenario `i` of each round as a share of that round's ceiling, lowest to
/// highest: `20–22%`.
fn share(rounds: &[[Report; 3]], i: usize) -> String {
    let (lo, hi) = rounds
        .iter()
        .map(|r| 100.0 * r[i].rps() / r[0].rps())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    format!("{lo:.0}–{hi:.0}%")
}

/// Scenario `i`'s p99 in each round, in ms: `12.1 / 9.8 / 10.4`.
fn p99s(rounds: &[[Report; 3]], i: usize) -> String {
    let each: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.1}", r[i].p99_us as f64 / 1000.0))
        .collect();
    each.join(" / ") + " ms"
}

/// Scenario `i`'s disk stalls in each round: `disk stalls ≥ 20 ms 0 / 2 /
/// 0 (longest 139 ms)`.
fn stalls(rounds: &[[Report; 3]], i: usize, watched: bool) -> String {
    if !watched {
        return "disk stalls not watched (no block device)".into();
    }
    let each: Vec<String> = rounds
        .iter()
        .map(|r| r[i].disk_stalls.len().to_string())
        .collect();
    let longest = rounds
        .iter()
        .flat_map(|r| r[i].disk_stalls.iter().copied())
        .max();
    let longest = longest.map_or(String::new(), |ms| format!(" (longest {ms} ms)"));
    format!(
        "disk stalls ≥ {} ms {}{longest}",
        disk::STALL.as_millis(),
        each.join(" / ")
    )
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn print_table(args: &Args, rows: &[(&str, Figures)]) {
    let c = args.connections;
    println!(
        "| Backend | Scenario | Conns | req/s | p50 ms | p99 ms | vs ceiling | CPU µs/req server + wrk (+ PostgreSQL) | Target | Notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (backend, f) in rows {
        let ceiling = f.ceiling.rps();
        let ratio = |r: &Report| format!("{:.0}%", 100.0 * r.rps() / ceiling);
        let line = |name: &str,
                    conns: u32,
                    r: &Report,
                    vs: String,
                    target: String,
                    notes: String| {
            let (server, wrk, db) = r.cpu_per_request();
            let db = if db > 0.0 {
                format!(" + {db:.0}")
            } else {
                String::new()
            };
            println!(
                "| {backend} | {name} | {conns} | {:.0} | {} | {} | {vs} | {server:.0} + {wrk:.0}{db} | {target} | {notes} |",
                r.rps(),
                ms(r.p50_us),
                ms(r.p99_us)
            );
        };
        let errors = |r: &Report| {
            let mut n = format!("{} non-2xx, {} socket errors", r.non2xx, r.socket_errors);
            if r.exhausted > 0 {
                n.push_str(&format!(", RAN OUT of bodies ({})", r.exhausted));
            }
            n
        };
        line(
            "GET /healthz (ceiling)",
            c,
            &f.ceiling,
            "100%".into(),
            String::new(),
            format!(
                "{}; cores idle {:.0}%",
                errors(&f.ceiling),
                f.ceiling.idle_percent()
            ),
        );
        let l2 = &f.login_2fa;
        let ok = 100.0 * l2.rps() / ceiling >= 25.0 && l2.p99_us <= 10_000 && l2.non2xx == 0;
        line(
            "POST /login-2fa successes",
            c,
            l2,
            ratio(l2),
            verdict(ok, "≥ 25%, p99 ≤ 10 ms"),
            {
                // The server's own writes: PostgreSQL's are another process's.
                let disk = if *backend == "SQLite" {
                    format!("; disk {:.1} KiB/req", l2.disk_kib_per_request())
                } else {
                    String::new()
                };
                format!(
                    "{}{disk}; cores idle {:.0}%; rounds {}, p99 {}; {}",
                    errors(l2),
                    l2.idle_percent(),
                    share(&f.rounds, 1),
                    p99s(&f.rounds, 1),
                    stalls(&f.rounds, 1, f.disks_watched)
                )
            },
        );
        let me = &f.me;
        let ok = 100.0 * me.rps() / ceiling >= 50.0 && me.non2xx == 0;
        line(
            "GET /me",
            c,
            me,
            ratio(me),
            verdict(ok, "≥ 50%"),
            format!(
                "{}; rounds {}, p99 {}",
                errors(me),
                share(&f.rounds, 2),
                p99s(&f.rounds, 2)
            ),
        );
        let statuses: Vec<String> = f
            .flood
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let bad_5xx = f
            .flood
            .statuses
            .keys()
            .any(|s| s.starts_with('5') && s != "503");
        line(
            "POST /login flood (argon2 default)",
            args.flood_connections,
            &f.flood,
            ratio(&f.flood),
            String::new(),
            statuses.join(", "),
        );
        let h = &f.flood_healthz;
        let ok = h.p99_us <= 20_000 && !bad_5xx && f.peak_rss_mib <= 150.0;
        let notes = format!("peak RSS {:.0} MiB; {}", f.peak_rss_mib, errors(h));
        line(
            "GET /healthz during the flood",
            1,
            h,
            String::new(),
            verdict(ok, "p99 ≤ 20 ms, RSS ≤ 150 MiB, no 5xx but 503"),
            notes,
        );
    }
}

fn verdict(ok: bool, target: &str) -> String {
    format!("{} ({target})", if ok { "met" } else { "**missed**" })
}
