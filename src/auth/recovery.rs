//! Recovery codes at rest: each code is stored as SHA-256 over a random
//! per-code salt and the code. With 80 random bits per code, a copy of the
//! database cannot be turned back into codes, and no server key is involved,
//! so rotating the sealing key leaves recovery codes valid.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::crypto::fill_random;
use crate::domain::otp::RecoveryCode;

/// How many codes an enrollment gets.
pub const CODES_PER_ENROLLMENT: usize = 10;

/// One stored code.
pub struct StoredCode {
    /// Random per code.
    pub salt: Vec<u8>,
    /// SHA-256(domain ‖ salt ‖ normalized code).
    pub hash: Vec<u8>,
}

/// A new set: the codes to show once and what to store.
pub fn generate_set() -> (Vec<RecoveryCode>, Vec<StoredCode>) {
    (0..CODES_PER_ENROLLMENT)
        .map(|_| {
            let code = RecoveryCode::generate();
            let mut salt = vec![0u8; 16];
            fill_random(&mut salt);
            let hash = digest(&salt, &code);
            (code, StoredCode { salt, hash })
        })
        .unzip()
}

/// Whether `code` is the one stored as `stored`, compared in constant time.
pub fn matches(code: &RecoveryCode, stored: &StoredCode) -> bool {
    digest(&stored.salt, code).ct_eq(&stored.hash).into()
}

fn digest(salt: &[u8], code: &RecoveryCode) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"twofactor/recovery-code/v1/");
    h.update(salt);
    h.update(code.normalized().as_bytes());
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_matches_only_its_own_record() {
        let (codes, stored) = generate_set();
        assert_eq!(codes.len(), CODES_PER_ENROLLMENT);
        for (i, code) in codes.iter().enumerate() {
            for (j, record) in stored.iter().enumerate() {
                assert_eq!(matches(code, record), i == j);
            }
        }
    }
}
