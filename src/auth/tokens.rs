//! Bearer tokens (sessions) and MFA challenge tokens.
//!
//! A token is 32 bytes sent as 43 base64url characters: the time it was
//! issued (microseconds since the Unix epoch, 8 bytes big-endian), then 192
//! bits from the OS CSPRNG. The database keeps only its key: those 8 time
//! bytes again, then the token's SHA-256. A hash of 192 random bits needs
//! no key or salt: it cannot be inverted, so a copy of the database holds no
//! usable token, and 2^192 guesses are out of reach.
//!
//! Why the time comes first: the keys of tokens issued one after another
//! sort one after another, so the token index grows at one end. A commit
//! group then rewrites one page of that index instead of one random page
//! per token; for a /login-2fa (a challenge spent, a session stored) that
//! is two of the four or so pages it wrote. The same order lets the
//! clean-up find expired tokens without an index on their expiry
//! ([`crate::db::expired`]). The time tells nothing the holder of the token
//! does not know: the session list shows it.
//!
//! Tokens issued before this layout (256 random bits) were stored by their
//! SHA-256 alone. A lookup that finds nothing by the current key tries that
//! legacy key, so those tokens keep working until they expire, and a token
//! of the current layout costs one index probe.

use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

use super::crypto::fill_random;

/// Length of a token on the wire.
pub const TOKEN_CHARS: usize = 43;

/// Bytes of a token.
const TOKEN_BYTES: usize = 32;

/// Bytes of the issue time at the start of a token and of its key.
const TIME_BYTES: usize = 8;

/// A freshly issued token: the string for the client, the key for the store.
pub struct Issued {
    /// Sent once to the client, never stored or logged.
    pub token: String,
    /// What the database keeps.
    pub key: Vec<u8>,
}

/// How the database finds a presented token: its key, and the key a token
/// of the old layout was stored under (tried only when the first finds
/// nothing; at most one can exist: they differ in length).
pub struct TokenKey {
    key: Vec<u8>,
    legacy: Vec<u8>,
}

impl TokenKey {
    /// The key of the current layout.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key of the layout before time-ordered tokens (its SHA-256).
    pub fn legacy(&self) -> &[u8] {
        &self.legacy
    }
}

/// Issues a new token.
pub fn issue() -> Issued {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut bytes = [0u8; TOKEN_BYTES];
    bytes[..TIME_BYTES].copy_from_slice(&micros.to_be_bytes());
    fill_random(&mut bytes[TIME_BYTES..]);
    let token = BASE64URL_NOPAD.encode(&bytes);
    let key = key_of(&bytes, &token);
    Issued { token, key }
}

/// The keys of `token`, or `None` if it can't be one we issued (so garbage
/// never reaches the database).
pub fn parse(token: &str) -> Option<TokenKey> {
    if token.len() != TOKEN_CHARS {
        return None;
    }
    let bytes = BASE64URL_NOPAD.decode(token.as_bytes()).ok()?;
    if bytes.len() != TOKEN_BYTES {
        return None;
    }
    Some(TokenKey {
        key: key_of(&bytes, token),
        legacy: Sha256::digest(token.as_bytes()).to_vec(),
    })
}

fn key_of(bytes: &[u8], token: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIME_BYTES + 32);
    key.extend_from_slice(&bytes[..TIME_BYTES]);
    key.extend_from_slice(&Sha256::digest(token.as_bytes()));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_43_chars_unique_and_keyed_consistently() {
        let a = issue();
        let b = issue();
        assert_eq!(a.token.len(), TOKEN_CHARS);
        assert_ne!(a.token, b.token);
        assert_eq!(parse(&a.token).map(|k| k.key), Some(a.key));
    }

    #[test]
    fn keys_of_tokens_issued_later_sort_later() {
        let first = issue();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = issue();
        assert!(first.key < second.key);
    }

    #[test]
    fn a_token_of_the_old_layout_is_found_by_its_sha256() {
        let mut bytes = [0u8; TOKEN_BYTES];
        fill_random(&mut bytes);
        let old = BASE64URL_NOPAD.encode(&bytes);
        let keys = parse(&old).expect("well formed");
        assert_eq!(keys.legacy(), Sha256::digest(old.as_bytes()).as_slice());
        assert_ne!(keys.key(), keys.legacy());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "abc", &"!".repeat(43), &"A".repeat(44)] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
