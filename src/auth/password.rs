//! Argon2id password hashing on a fixed pool of worker threads, off the
//! async runtime: at most `workers` hashes at once and `queue` more waiting,
//! so a login flood can neither stall other requests nor exhaust memory.
//! Each worker keeps its argon2 memory (19 MiB at the default cost) and
//! reuses it: allocating it per hash, on whichever thread, let the
//! allocator keep dozens of freed copies (800 MiB resident after a flood).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::oneshot;

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

/// Work for a hashing thread, given that thread's reusable memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The password hasher shared by all requests.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
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
    /// Builds a hasher with argon2id `memory_kib`/`iterations`/`parallelism`
    /// and starts its `workers` threads (they end when the last clone of the
    /// hasher is dropped).
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        workers: usize,
        queue: usize,
    ) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("OS RNG failed: {e}"))?;
        let dummy = hash_with(&params, &random, &mut Vec::new())?;
        let workers = workers.max(1);
        let (jobs, queued) = mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for i in 0..workers {
            let queued = queued.clone();
            std::thread::Builder::new()
                .name(format!("twofactor-hash-{i}"))
                .spawn(move || work(&queued))
                .context("starting a hashing thread")?;
        }
        Ok(Hasher {
            params,
            jobs,
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
        let params = self.params.clone();
        let password = password.clone();
        self.run(move |memory| hash_with(&params, password.expose().as_bytes(), memory))
            .await
    }

    /// Checks `password` against `stored`; with no stored hash (unknown user)
    /// it verifies against the dummy hash and answers false, at the same cost.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let password = password.clone();
        let known = stored.is_some();
        let stored: Arc<str> = stored.map(Arc::from).unwrap_or_else(|| self.dummy.clone());
        self.run(move |memory| {
            let ok = verify_with(password.expose().as_bytes(), &stored, memory)?;
            Ok(ok && known)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let before = self.in_system.fetch_add(1, Ordering::AcqRel);
        let _slot = Slot(self.in_system.clone());
        if before >= self.capacity {
            return Err(HashError::Busy);
        }
        let queued = Instant::now();
        let wait = self.wait.clone();
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            wait.observe(queued.elapsed().as_secs_f64());
            let _ = done.send(work(memory));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing threads are gone"))?;
        Ok(result.await.context("a hashing thread failed")??)
    }
}

/// A hashing thread: takes jobs until the hasher is dropped.
fn work(queued: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // A panic is the job's failure (its caller sees a closed channel),
        // not the end of this thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
    }
}

/// `memory` grown to `params`' size (it never shrinks).
fn blocks<'m>(memory: &'m mut Vec<Block>, params: &Params) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// A new argon2id PHC string for `password` with a random salt.
fn hash_with(params: &Params, password: &[u8], memory: &mut Vec<Block>) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("OS RNG failed: {e}"))?;
    let mut out = [0u8; 32];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(password, &salt, &mut out, blocks(memory, params))
        .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, at the parameters
/// stored with it; the outputs are compared in constant time.
fn verify_with(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> anyhow::Result<bool> {
    let broken =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("stored password hash does not parse: {e}");
    let phc = PasswordHash::new(stored).map_err(|e| broken(&e))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|e| broken(&e))?;
    let version =
        Version::try_from(phc.version.unwrap_or(Version::V0x13.into())).map_err(|e| broken(&e))?;
    let params = Params::try_from(&phc).map_err(|e| broken(&e))?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Err(broken(&"no salt or output"));
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt, &mut out, blocks(memory, &params))
        .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).is_ok_and(|computed| &computed == expected))
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

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let params = Params::new(64, 1, 1, None).unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = Vec::new();
        let theirs = argon.hash_password(b"correct horse").unwrap().to_string();
        assert!(verify_with(b"correct horse", &theirs, &mut memory).unwrap());
        assert!(!verify_with(b"wrong horse!", &theirs, &mut memory).unwrap());
        let ours = hash_with(&params, b"correct horse", &mut memory).unwrap();
        assert!(
            argon
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(verify_with(b"x", "$argon2id$v=19$garbage", &mut memory).is_err());
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
