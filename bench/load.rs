//! Driving wrk with bench/wrk.lua and reading its one-line JSON report.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

/// What one wrk run measured.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Report {
    pub requests: u64,
    pub micros: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub non2xx: u64,
    pub socket_errors: u64,
    pub exhausted: u64,
    /// Only when counted (`BENCH_STATUSES=1`).
    pub statuses: BTreeMap<String, u64>,
    /// CPU seconds wrk used (user + system), from the shell's `times`.
    #[serde(skip)]
    pub wrk_cpu: f64,
    /// CPU seconds the server used meanwhile (filled in by the caller).
    #[serde(skip)]
    pub server_cpu: f64,
    /// CPU seconds PostgreSQL's processes used meanwhile (filled in by
    /// the caller; 0 on SQLite).
    #[serde(skip)]
    pub db_cpu: f64,
    /// Bytes the server wrote to the disk meanwhile (filled in by the caller).
    #[serde(skip)]
    pub server_disk: u64,
    /// The machine's CPU time meanwhile, all cores: idle, and in all
    /// (filled in by the caller, from `/proc/stat`).
    #[serde(skip)]
    pub machine: (f64, f64),
    /// Each stall of the data's disks meanwhile, in ms (filled in by the
    /// caller; see `disk`).
    #[serde(skip)]
    pub disk_stalls: Vec<u64>,
}

impl Report {
    /// Requests per second over the whole run.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.micros.max(1) as f64 / 1e6)
    }

    /// Adds `slice`, a later run of the same scenario: counts and times add
    /// up; the percentiles are left for the caller to take from the slices
    /// (exact percentiles of the whole would need wrk's histograms).
    pub fn add(&mut self, slice: &Report) {
        self.requests += slice.requests;
        self.micros += slice.micros;
        self.non2xx += slice.non2xx;
        self.socket_errors += slice.socket_errors;
        self.exhausted += slice.exhausted;
        for (status, count) in &slice.statuses {
            *self.statuses.entry(status.clone()).or_default() += count;
        }
        self.wrk_cpu += slice.wrk_cpu;
        self.server_cpu += slice.server_cpu;
        self.db_cpu += slice.db_cpu;
        self.server_disk += slice.server_disk;
        self.machine.0 += slice.machine.0;
        self.machine.1 += slice.machine.1;
        self.disk_stalls.extend(&slice.disk_stalls);
    }

    /// The share of the machine's cores left idle meanwhile, in percent.
    pub fn idle_percent(&self) -> f64 {
        100.0 * self.machine.0 / self.machine.1.max(f64::MIN_POSITIVE)
    }

    /// KiB written to the disk per request.
    pub fn disk_kib_per_request(&self) -> f64 {
        self.server_disk as f64 / 1024.0 / self.requests.max(1) as f64
    }

    /// CPU µs per request of the server, of wrk and of PostgreSQL.
    pub fn cpu_per_request(&self) -> (f64, f64, f64) {
        let n = self.requests.max(1) as f64;
        (
            self.server_cpu * 1e6 / n,
            self.wrk_cpu * 1e6 / n,
            self.db_cpu * 1e6 / n,
        )
    }
}

/// One load: what to send, how hard, how long.
pub struct Load<'a> {
    pub url: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub connections: u32,
    pub threads: u32,
    pub seconds: u32,
    /// `BENCH_*` variables for wrk.lua (bodies, body, tokens, statuses).
    pub env: Vec<(&'static str, String)>,
}

impl Load<'_> {
    /// Starts wrk; `finish` waits for it and parses its report.
    pub fn spawn(&self, script: &Path) -> anyhow::Result<std::process::Child> {
        // bash's `times` prints the CPU time wrk used once it has exited.
        Command::new("bash")
            .arg("-c")
            .arg(r#"wrk "$@" && times"#)
            .arg("wrk")
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.seconds))
            .arg("--timeout")
            .arg("30s")
            .arg("-s")
            .arg(script)
            .arg(format!("{}{}", self.url, self.path))
            .env("BENCH_METHOD", self.method)
            .env("BENCH_PATH", self.path)
            .env("BENCH_THREADS", self.threads.to_string())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting wrk (apt-get install wrk)")
    }

    /// Runs wrk to the end.
    pub fn run(&self, script: &Path) -> anyhow::Result<Report> {
        finish(self.spawn(script)?)
    }
}

/// Waits for a wrk started by [`Load::spawn`] and parses its report.
pub fn finish(child: std::process::Child) -> anyhow::Result<Report> {
    let out = child.wait_with_output().context("waiting for wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed ({}): {text}", out.status);
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .with_context(|| format!("no BENCH line in wrk output: {text}"))?;
    let mut report: Report =
        serde_json::from_str(line).with_context(|| format!("parsing {line}"))?;
    // `times` prints the shell's own user/system time, then its children's.
    if let Some(children) = text.lines().last() {
        report.wrk_cpu = children
            .split_whitespace()
            .filter_map(minutes_seconds)
            .sum();
    }
    Ok(report)
}

/// `1m2.500s` → 62.5.
fn minutes_seconds(text: &str) -> Option<f64> {
    let (m, s) = text.strip_suffix('s')?.split_once('m')?;
    Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}
