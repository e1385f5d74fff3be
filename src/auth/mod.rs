//! Cryptography and security policy: password hashing, TOTP, tokens, sealing
//! of secrets at rest, recovery-code hashing and the lockout schedule.

pub mod crypto;
pub mod lockout;
pub mod password;
pub mod recovery;
pub mod tokens;
pub mod totp;
