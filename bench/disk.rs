//! Stalls of the disks under the bench's data: spans of at least
//! [`STALL`] in which a disk had requests in flight and finished none,
//! read from `/proc/diskstats` every [`EVERY`].
//!
//! A login is acknowledged only once its commit is on the disk, so while
//! the disk finishes nothing every login in flight waits, and the slice's
//! p99 shows it. On this shared machine the virtual disk sometimes stops
//! for 40–380 ms with one request in flight, then finishes hundreds at once
//! (BENCHMARKS.md, session 24): this tells such a p99 from one the service
//! made.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The shortest span counted as a stall: a commit's sync takes 0.1–1 ms
/// on this machine, so 20 ms of nothing finished is not the disk being busy.
pub const STALL: Duration = Duration::from_millis(20);

/// How often the counters are read.
const EVERY: Duration = Duration::from_millis(5);

/// A disk, as `/proc/diskstats` names it: major and minor device numbers.
pub type Device = (u64, u64);

/// The block device a path's file system is on; `None` for one that has
/// none (tmpfs, overlay).
pub fn device_of(path: &Path) -> Option<Device> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    // glibc's `major()` and `minor()`.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major != 0).then_some((major, minor))
}

/// The disks of `paths`, each once.
pub fn devices_of(paths: &[&Path]) -> Vec<Device> {
    let mut devices: Vec<Device> = paths.iter().filter_map(|p| device_of(p)).collect();
    devices.sort_unstable();
    devices.dedup();
    devices
}

/// A thread reading the counters of some disks until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

impl Watch {
    /// Starts watching `devices`.
    pub fn start(devices: Vec<Device>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || watch(&devices, &stopped));
        Watch { stop, thread }
    }

    /// Stops, returning each stall's length in ms, in order.
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let stalls = self.thread.join().unwrap_or_default();
        stalls
            .into_iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .collect()
    }
}

/// One disk's state: requests finished so far, and since when it has had
/// requests in flight without finishing any.
struct Disk {
    device: Device,
    finished: Option<u64>,
    stalled_since: Option<Instant>,
}

fn watch(devices: &[Device], stop: &AtomicBool) -> Vec<Duration> {
    let mut disks: Vec<Disk> = devices
        .iter()
        .map(|&device| Disk {
            device,
            finished: None,
            stalled_since: None,
        })
        .collect();
    let mut stalls = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let now = Instant::now();
        let stats = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        for disk in &mut disks {
            let Some((finished, in_flight)) = counters(&stats, disk.device) else {
                continue;
            };
            if disk.finished != Some(finished) || stopping {
                if let Some(since) = disk.stalled_since.take() {
                    let span = now - since;
                    if span >= STALL {
                        stalls.push(span);
                    }
                }
                disk.finished = Some(finished);
            }
            if in_flight > 0 && disk.stalled_since.is_none() && !stopping {
                disk.stalled_since = Some(now);
            } else if in_flight == 0 {
                disk.stalled_since = None;
            }
        }
        if stopping {
            return stalls;
        }
        std::thread::sleep(EVERY);
    }
}

/// A device's requests finished so far (reads, writes, discards and
/// flushes) and its requests in flight, from `/proc/diskstats`' text.
fn counters(stats: &str, device: Device) -> Option<(u64, u64)> {
    stats.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        if (n(0)?, n(1)?) != device {
            return None;
        }
        // After major, minor and name: reads 3, writes 7, in flight 11,
        // discards 14, flushes 18 (the last two since Linux 4.18 and 5.5).
        let finished = n(3)? + n(7)? + n(14).unwrap_or(0) + n(18).unwrap_or(0);
        Some((finished, n(11)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = " 254       0 vda 4689428 145839 217973682 20488423 100862749 3983995 2360960960 12623331 1 5994900 35282357 2989506 69 909876816 289935 44496258 1880666\n   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn a_disk_line_gives_the_requests_finished_and_in_flight() {
        assert_eq!(
            counters(STATS, (254, 0)),
            Some((4689428 + 100862749 + 2989506 + 44496258, 1))
        );
    }

    #[test]
    fn an_older_kernel_line_without_discards_or_flushes_still_counts() {
        assert_eq!(counters(STATS, (7, 0)), Some((0, 0)));
    }

    #[test]
    fn a_device_not_listed_gives_nothing() {
        assert_eq!(counters(STATS, (8, 0)), None);
    }
}
