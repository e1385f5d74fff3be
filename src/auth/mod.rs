//! Cryptography and security policy: password hashing, TOTP, tokens, sealing
//! of secrets at rest, recovery-code hashing, the lockout schedule and password strength.

pub mod crypto;
pub mod lockout;
pub mod password;
pub mod recovery;
pub mod strength;
pub mod tokens;
pub mod totp;
