//! Password strength: a new password is refused when zxcvbn (Dropbox's
//! estimator, with its frequency lists of common passwords, names, words and
//! keyboard patterns) thinks it takes fewer than 10^10 guesses (score < 3),
//! or when it is the account's username or current password in disguise
//! (both given to zxcvbn as user inputs).

use zxcvbn::Score;
use zxcvbn::feedback::Warning;

/// Only this many characters are estimated: zxcvbn's cost grows with the
/// length, and a longer password is not weaker for its tail being ignored.
const ESTIMATED_CHARS: usize = 100;

/// Why a password is refused, in words for the error's `detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weakness {
    /// On a list of common passwords, or close to one.
    Common,
    /// A keyboard row, repetition or sequence.
    Pattern,
    /// A date or a recent year.
    Date,
    /// A single word or name.
    Word,
    /// Too easy to guess for another reason (short, or from the user's own
    /// name or current password).
    Guessable,
}

impl Weakness {
    /// The explanation shown to the user.
    pub fn message(self) -> &'static str {
        match self {
            Weakness::Common => {
                "Password is too weak: it is a common password or close to one; use a few unrelated words"
            }
            Weakness::Pattern => {
                "Password is too weak: keyboard rows, repeats and sequences are easy to guess; use a few unrelated words"
            }
            Weakness::Date => {
                "Password is too weak: dates and years are easy to guess; use a few unrelated words"
            }
            Weakness::Word => {
                "Password is too weak: a single word or name is easy to guess; add more unrelated words"
            }
            Weakness::Guessable => {
                "Password is too weak: it is too easy to guess; use a longer phrase of unrelated words"
            }
        }
    }
}

/// Why `password` is too weak, if it is; `user_inputs` (username, current
/// password) count as known to an attacker.
pub fn weakness(password: &str, user_inputs: &[&str]) -> Option<Weakness> {
    let estimated: String = password.chars().take(ESTIMATED_CHARS).collect();
    let entropy = zxcvbn::zxcvbn(&estimated, user_inputs);
    if entropy.score() >= Score::Three {
        return None;
    }
    let warning = entropy.feedback().and_then(|f| f.warning());
    Some(match warning {
        Some(
            Warning::ThisIsATop10Password
            | Warning::ThisIsATop100Password
            | Warning::ThisIsACommonPassword
            | Warning::ThisIsSimilarToACommonlyUsedPassword,
        ) => Weakness::Common,
        Some(
            Warning::StraightRowsOfKeysAreEasyToGuess
            | Warning::ShortKeyboardPatternsAreEasyToGuess
            | Warning::RepeatsLikeAaaAreEasyToGuess
            | Warning::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess
            | Warning::SequencesLikeAbcAreEasyToGuess,
        ) => Weakness::Pattern,
        Some(Warning::RecentYearsAreEasyToGuess | Warning::DatesAreOftenEasyToGuess) => {
            Weakness::Date
        }
        Some(
            Warning::AWordByItselfIsEasyToGuess
            | Warning::NamesAndSurnamesByThemselvesAreEasyToGuess
            | Warning::CommonNamesAndSurnamesAreEasyToGuess,
        ) => Weakness::Word,
        _ => Weakness::Guessable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused() {
        for p in ["password", "password1", "12345678", "iloveyou", "P@ssw0rd"] {
            assert!(weakness(p, &[]).is_some(), "{p}");
        }
        assert_eq!(weakness("password", &[]), Some(Weakness::Common));
        assert_eq!(weakness("aaaaaaaaaaaa", &[]), Some(Weakness::Pattern));
    }

    #[test]
    fn long_unrelated_words_pass() {
        assert_eq!(weakness("velvet cactus orbit lantern", &[]), None);
        assert_eq!(weakness("correct horse battery staple", &[]), None);
    }

    #[test]
    fn the_username_counts_as_known() {
        assert!(weakness("bob.smith@example.com", &["bob.smith@example.com"]).is_some());
    }

    #[test]
    fn very_long_passwords_are_estimated_quickly() {
        let long = "ab".repeat(128);
        let started = std::time::Instant::now();
        assert!(weakness(&long, &[]).is_some());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
