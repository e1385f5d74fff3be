//! Argon2id password hashing, run off the async runtime on a bounded pool:
//! at most `workers` hashes in flight and `queue` more waiting, so a login
//! flood can neither stall other requests nor exhaust memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Why a hash could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full.
    #[error("password hashing queue is full")]
    Busy,
    /// The hash itself failed (bad parameters, a stored hash that doesn't parse).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The password hasher shared by all requests.
#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    in_system: Arc<AtomicUsize>,
    capacity: usize,
    /// Seconds each hash waited for a worker.
    wait: Histogram,
    /// A hash of a random password, verified against for unknown users so
    /// they cost the same time as a wrong password.
    dummy: Arc<str>,
}

/// Decrements the in-system count however the request ends (even if the
/// client hangs up while it waits).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// Builds a hasher with argon2id `memory_kib`/`iterations`/`parallelism`.
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        workers: usize,
        queue: usize,
    ) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("OS RNG failed: {e}"))?;
        let dummy = argon
            .hash_password(&random)
            .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))?
            .to_string();
        let workers = workers.max(1);
        Ok(Hasher {
            argon,
            permits: Arc::new(Semaphore::new(workers)),
            in_system: Arc::new(AtomicUsize::new(0)),
            capacity: workers + queue,
            wait: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            dummy: dummy.into(),
        })
    }

    /// Requests currently hashing or waiting to.
    pub fn depth(&self) -> usize {
        self.in_system.load(Ordering::Acquire)
    }

    /// The queue-wait histogram, for registering with the metrics.
    pub fn wait_histogram(&self) -> Histogram {
        self.wait.clone()
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let argon = self.argon.clone();
        let password = password.clone();
        self.run(move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))
        })
        .await
    }

    /// Checks `password` against `stored`; with no stored hash (unknown user)
    /// it verifies against the dummy hash and answers false, at the same cost.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let argon = self.argon.clone();
        let password = password.clone();
        let known = stored.is_some();
        let stored: Arc<str> = stored.map(Arc::from).unwrap_or_else(|| self.dummy.clone());
        self.run(move || {
            let hash = argon2::PasswordHash::new(&stored)
                .map_err(|e| anyhow::anyhow!("stored password hash does not parse: {e}"))?;
            let ok = argon
                .verify_password(password.expose().as_bytes(), &hash)
                .is_ok();
            Ok(ok && known)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let before = self.in_system.fetch_add(1, Ordering::AcqRel);
        let _slot = Slot(self.in_system.clone());
        if before >= self.capacity {
            return Err(HashError::Busy);
        }
        let queued = std::time::Instant::now();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("hash semaphore closed")?;
        self.wait.observe(queued.elapsed().as_secs_f64());
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .context("hash worker panicked")??;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let h = Hasher::new(64, 1, 1, 1, 4).unwrap();
        let stored = h.hash(&pw("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(&pw("correct horse"), Some(&stored)).await.unwrap());
        assert!(!h.verify(&pw("wrong horse!"), Some(&stored)).await.unwrap());
        assert!(!h.verify(&pw("correct horse"), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let h = Hasher::new(64, 1, 1, 1, 0).unwrap();
        // Hold the only slot by pretending a request is in flight.
        h.in_system.fetch_add(1, Ordering::AcqRel);
        assert!(matches!(
            h.hash(&pw("password1")).await,
            Err(HashError::Busy)
        ));
        h.in_system.fetch_sub(1, Ordering::AcqRel);
        assert!(h.hash(&pw("password1")).await.is_ok());
        assert_eq!(h.depth(), 0);
    }
}
