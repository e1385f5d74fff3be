//! Bearer tokens (sessions) and MFA challenge tokens: 256 random bits from
//! the OS CSPRNG, sent as 43 base64url characters, stored only as SHA-256.
//! A hash of 256 random bits needs no key or salt: it cannot be inverted, so
//! a copy of the database holds no usable token.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

use super::crypto::fill_random;

/// Length of a token on the wire.
pub const TOKEN_CHARS: usize = 43;

/// A freshly issued token: the string for the client, the hash for the store.
pub struct Issued {
    /// Sent once to the client, never stored or logged.
    pub token: String,
    /// What the database keeps.
    pub hash: Vec<u8>,
}

/// Issues a new random token.
pub fn issue() -> Issued {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    let token = BASE64URL_NOPAD.encode(&bytes);
    let hash = hash(&token);
    Issued { token, hash }
}

/// The stored form of a token, or `None` if `token` can't be one we issued
/// (so garbage never reaches the database).
pub fn parse_and_hash(token: &str) -> Option<Vec<u8>> {
    let well_formed = token.len() == TOKEN_CHARS
        && BASE64URL_NOPAD
            .decode_len(token.len())
            .is_ok_and(|n| n == 32)
        && BASE64URL_NOPAD.decode(token.as_bytes()).is_ok();
    well_formed.then(|| hash(token))
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_43_chars_unique_and_hash_consistently() {
        let a = issue();
        let b = issue();
        assert_eq!(a.token.len(), TOKEN_CHARS);
        assert_ne!(a.token, b.token);
        assert_eq!(parse_and_hash(&a.token), Some(a.hash));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "abc", &"!".repeat(43), &"A".repeat(44)] {
            assert_eq!(parse_and_hash(bad), None, "{bad:?}");
        }
    }
}
