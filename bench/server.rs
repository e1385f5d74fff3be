//! The release server as a child process: started on port 0 with its own
//! data directory, its address read from the `listening on` line, stopped
//! with SIGTERM, its peak resident memory read from /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// A running `twofactor serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// Starts `bin serve` on `database_url` with `extra` flags; its logs go
    /// to `log` (appended).
    pub fn start(
        bin: &Path,
        database_url: &str,
        key_file: &Path,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--database-url", database_url])
            .arg("--encryption-key-file")
            .arg(key_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Ok(Server { child, url }),
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not start; see {}", log.display())
            }
        }
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system, all threads) the server has used.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .context("reading /proc/PID/stat")?;
        let (_, ticks) = cpu_ticks(&stat).context("unreadable /proc/PID/stat")?;
        Ok(ticks / clock_ticks())
    }

    /// Bytes the server has sent to the disk (`write_bytes` of
    /// /proc/PID/io: what reached the block layer, the WAL's and the
    /// checkpoints' writes alike).
    pub fn disk_bytes(&self) -> anyhow::Result<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid()))
            .context("reading /proc/PID/io")?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no write_bytes line")
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading /proc/PID/status")?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM line")?;
        Ok(kib / 1024.0)
    }

    /// SIGTERM, then waits for the graceful exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) used so far by the processes named
/// `postgres` (every backend, the WAL writer, the checkpointer...); 0 when
/// there are none. A process that ended between two readings takes its
/// time with it, so a difference counts only processes that lived through
/// it, as the pooled connections do.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(("postgres", used)) = cpu_ticks(&stat) {
            ticks += used;
        }
    }
    ticks / clock_ticks()
}

/// The machine's CPU clock ticks so far, all cores: idle (waiting for
/// I/O included), and in all (the first line of `/proc/stat`).
pub fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = ticks.get(3).unwrap_or(&0.0);
    let iowait = ticks.get(4).unwrap_or(&0.0);
    (idle + iowait, ticks.iter().take(8).sum())
}

/// A process's command name and CPU clock ticks (user + system) from the
/// text of its `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Option<(&str, f64)> {
    // The command name is in parentheses and may hold spaces or ')'; the
    // fields after it start at state (field 3): utime is 14, stime 15.
    let (head, rest) = stat.rsplit_once(") ")?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((name, tick(11)? + tick(12)?))
}

/// A fresh directory for one backend's run.
pub fn fresh_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}
