//! Usernames: 1–64 ASCII letters, digits and `._@+-`, unique ignoring ASCII case.

/// A valid username, kept as registered plus its case-folded lookup key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    display: String,
    key: String,
}

/// Why a string is not a username (the message names the rule, never the input).
pub const RULE: &str = "must be 1 to 64 characters of A-Z a-z 0-9 . _ @ + -";

impl Username {
    /// Accepts `s` if it follows [`RULE`].
    pub fn parse(s: &str) -> Option<Username> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        ok.then(|| Username {
            display: s.to_owned(),
            key: s.to_ascii_lowercase(),
        })
    }

    /// The username as the user typed it at signup.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded form that identifies the account (`Alice` = `alice`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_and_alphabet_are_enforced() {
        assert!(Username::parse("a").is_some());
        assert!(Username::parse(&"a".repeat(64)).is_some());
        assert!(Username::parse(&"a".repeat(65)).is_none());
        assert!(Username::parse("").is_none());
        assert!(Username::parse("alice+tag@example.com").is_some());
        for bad in ["al ice", "a/b", "é", "a\u{0}b", "a:b"] {
            assert!(Username::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_key_ignores_ascii_case() {
        let u = Username::parse("Alice").unwrap();
        assert_eq!(u.as_str(), "Alice");
        assert_eq!(u.key(), "alice");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_the_alphabet(s in ".{0,80}") {
            if let Some(u) = Username::parse(&s) {
                prop_assert!(u.as_str().len() <= 64);
                prop_assert!(u.key().bytes().all(|b| !b.is_ascii_uppercase()));
            }
        }

        #[test]
        fn every_string_of_the_alphabet_is_accepted(s in "[A-Za-z0-9._@+-]{1,64}") {
            prop_assert!(Username::parse(&s).is_some());
        }
    }
}
