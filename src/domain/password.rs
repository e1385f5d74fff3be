//! Passwords: 8–256 characters of any Unicode, held as a secret from the
//! moment they are parsed so they cannot reach a log by `Debug`.

use secrecy::{ExposeSecret, SecretString};

/// A password of acceptable length.
#[derive(Clone)]
pub struct Password(SecretString);

/// The length rule, for error messages.
pub const RULE: &str = "must be 8 to 256 characters";

impl Password {
    /// Accepts 8 to 256 Unicode scalar values.
    pub fn parse(s: &str) -> Option<Password> {
        (8..=256)
            .contains(&s.chars().count())
            .then(|| Password(SecretString::from(s.to_owned())))
    }

    /// The password's bytes, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Password::parse("1234567").is_none());
        assert!(Password::parse("12345678").is_some());
        assert!(Password::parse(&"é".repeat(256)).is_some());
        assert!(Password::parse(&"é".repeat(257)).is_none());
    }

    #[test]
    fn debug_hides_the_password() {
        let p = Password::parse("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
