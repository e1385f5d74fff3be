//! The lockout schedule: after `threshold` consecutive failures of one factor
//! an account is locked for `base_delay`, doubling with each further counted
//! failure up to `max_delay`. The counting itself lives in `db::throttle`.

use std::time::Duration;

/// Which counter a failure goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// Wrong passwords, on every endpoint that takes one.
    Password,
    /// Wrong TOTP or recovery codes, on /login-2fa and /disable-mfa together.
    SecondFactor,
}

impl Factor {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::SecondFactor => "second_factor",
        }
    }
}

/// Lockout settings.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failures that start a lockout.
    pub threshold: u32,
    /// First lockout's length.
    pub base_delay: Duration,
    /// Longest lockout.
    pub max_delay: Duration,
}

impl Policy {
    /// When an account with `failures` counted failures, the latest at `now`,
    /// is locked until (Unix seconds); `None` below the threshold.
    pub fn locked_until(&self, failures: i64, now: i64) -> Option<i64> {
        let over = failures.checked_sub(i64::from(self.threshold))?;
        if over < 0 {
            return None;
        }
        let base = self.base_delay.as_secs();
        let max = self.max_delay.as_secs();
        // Shifting past 63 overflows; beyond ~20 doublings the cap applies anyway.
        let delay = base
            .checked_mul(1u64 << over.min(40))
            .map_or(max, |d| d.min(max));
        Some(now.saturating_add(delay as i64))
    }
}

/// Seconds a client should wait before retrying, rounded up, at least 1.
pub fn retry_after(locked_until: i64, now: i64) -> Option<u64> {
    (locked_until > now).then(|| (locked_until - now).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            threshold: 5,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(900),
        }
    }

    #[test]
    fn the_delay_starts_at_the_threshold_and_doubles_to_the_cap() {
        let p = policy();
        assert_eq!(p.locked_until(4, 1000), None);
        assert_eq!(p.locked_until(5, 1000), Some(1030));
        assert_eq!(p.locked_until(6, 1000), Some(1060));
        assert_eq!(p.locked_until(9, 1000), Some(1480));
        assert_eq!(p.locked_until(10, 1000), Some(1900));
        assert_eq!(p.locked_until(500, 1000), Some(1900));
        assert_eq!(p.locked_until(i64::MAX, 1000), Some(1900));
    }

    #[test]
    fn retry_after_counts_the_remaining_seconds() {
        assert_eq!(retry_after(1030, 1000), Some(30));
        assert_eq!(retry_after(1000, 1000), None);
        assert_eq!(retry_after(999, 1000), None);
    }
}
