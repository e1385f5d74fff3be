//! What a client submits as a second factor: a typed TOTP code ([`OtpCode`]),
//! a recovery code ([`RecoveryCode`]), and the choice between them
//! ([`SecondFactor`], the `token` field of `/login-2fa` and `/disable-mfa`).
//!
//! This module owns parsing and normalisation only; checking a code against a
//! secret lives in `crate::auth::totp`, and hashing recovery codes elsewhere.
//! The `Debug` impls here never print the code itself.

use std::fmt;

use data_encoding::BASE32_NOPAD;

/// Smallest number of digits accepted for a TOTP code.
pub const MIN_DIGITS: u32 = 6;
/// Largest number of digits accepted for a TOTP code.
pub const MAX_DIGITS: u32 = 8;

/// A TOTP code as typed: digits only after removing spaces, exactly `digits` long.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OtpCode {
    value: u32,
    digits: u32,
}

impl OtpCode {
    /// Parses a code of exactly `digits` ASCII digits, ignoring ASCII spaces
    /// anywhere ("123 456"). Returns `None` for anything else, including a
    /// `digits` outside `6..=8` and non-ASCII digits.
    pub fn parse(input: &str, digits: u32) -> Option<OtpCode> {
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
            return None;
        }
        let mut value: u32 = 0;
        let mut count: u32 = 0;
        for c in input.chars().filter(|&c| c != ' ') {
            // `char::to_digit` only accepts ASCII, so Arabic-Indic etc. digits fail here.
            let d = c.to_digit(10)?;
            count += 1;
            // Bail before the value could overflow (8 digits always fit in u32).
            if count > digits {
                return None;
            }
            value = value * 10 + d;
        }
        (count == digits).then_some(OtpCode { value, digits })
    }

    /// The numeric value of the code (leading zeros are not significant here;
    /// [`OtpCode::digits`] carries the width).
    pub fn value(&self) -> u32 {
        self.value
    }

    /// How many digits the code was typed with.
    pub fn digits(&self) -> u32 {
        self.digits
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(***)")
    }
}

/// Number of base32 characters in a recovery code (16 × 5 bits = 80 bits).
pub const RECOVERY_CODE_LEN: usize = 16;
/// Random bytes behind a recovery code; base32 of 10 bytes is exactly 16 chars.
const RECOVERY_CODE_BYTES: usize = 10;

/// A recovery code: 16 characters of the RFC 4648 base32 alphabet (a-z, 2-7) = 80 bits, shown as
/// four groups of four joined by '-', lowercase: "abcd-efgh-ijkl-mnop".
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// Generates a fresh code from the OS CSPRNG: 10 random bytes, base32-encoded,
    /// so each of the 16 characters is uniform over the 32-letter alphabet.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate() -> RecoveryCode {
        let mut bytes = [0u8; RECOVERY_CODE_BYTES];
        // Without an OS RNG we cannot issue secrets at all; failing loudly is correct.
        getrandom::fill(&mut bytes).expect("OS random number generator failed");
        RecoveryCode(BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    }

    /// Parses a code case-insensitively, ignoring '-' and spaces; requires exactly
    /// 16 base32 characters (a-z, 2-7) after that.
    pub fn parse(input: &str) -> Option<RecoveryCode> {
        let mut normalized = String::with_capacity(RECOVERY_CODE_LEN);
        for c in input.chars().filter(|&c| c != '-' && c != ' ') {
            let c = c.to_ascii_lowercase();
            if !matches!(c, 'a'..='z' | '2'..='7') || normalized.len() == RECOVERY_CODE_LEN {
                return None;
            }
            normalized.push(c);
        }
        (normalized.len() == RECOVERY_CODE_LEN).then_some(RecoveryCode(normalized))
    }

    /// The 16 lowercase characters without separators (what gets hashed).
    pub fn normalized(&self) -> &str {
        &self.0
    }

    /// The form shown to users: "abcd-efgh-ijkl-mnop".
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(RECOVERY_CODE_LEN + 3);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

/// What the `token` field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    /// A time-based one-time code.
    Totp(OtpCode),
    /// A single-use recovery code.
    Recovery(RecoveryCode),
}

impl SecondFactor {
    /// TOTP if it parses as a code of `digits` digits, else a recovery code, else None.
    pub fn parse(input: &str, digits: u32) -> Option<SecondFactor> {
        OtpCode::parse(input, digits)
            .map(SecondFactor::Totp)
            .or_else(|| RecoveryCode::parse(input).map(SecondFactor::Recovery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn otp_accepts_spaces_anywhere() {
        assert_eq!(
            OtpCode::parse("123 456", 6).map(|c| c.value()),
            Some(123_456)
        );
        assert_eq!(
            OtpCode::parse(" 123456 ", 6).map(|c| c.value()),
            Some(123_456)
        );
        assert_eq!(
            OtpCode::parse("1 2 3 4 5 6", 6).map(|c| c.value()),
            Some(123_456)
        );
    }

    #[test]
    fn otp_requires_exact_length() {
        assert!(OtpCode::parse("12345", 6).is_none());
        assert!(OtpCode::parse("1234567", 6).is_none());
        assert!(OtpCode::parse("", 6).is_none());
        assert!(OtpCode::parse("      ", 6).is_none());
    }

    #[test]
    fn otp_refuses_non_ascii_digits_and_letters() {
        assert!(OtpCode::parse("12a456", 6).is_none());
        assert!(OtpCode::parse("١٢٣٤٥٦", 6).is_none());
        assert!(OtpCode::parse("１２３４５６", 6).is_none());
        assert!(OtpCode::parse("123\t456", 6).is_none());
        assert!(OtpCode::parse("+12345", 6).is_none());
        assert!(OtpCode::parse("-12345", 6).is_none());
    }

    #[test]
    fn otp_keeps_leading_zeros_and_width() {
        let code = OtpCode::parse("000123", 6).expect("valid code");
        assert_eq!(code.value(), 123);
        assert_eq!(code.digits(), 6);
    }

    #[test]
    fn otp_eight_digits() {
        let code = OtpCode::parse("9999 9999", 8).expect("valid code");
        assert_eq!((code.value(), code.digits()), (99_999_999, 8));
        assert!(OtpCode::parse("1234567", 8).is_none());
        assert_eq!(
            OtpCode::parse("1234567", 7).map(|c| c.value()),
            Some(1_234_567)
        );
    }

    #[test]
    fn otp_digits_outside_range_refused() {
        assert!(OtpCode::parse("12345", 5).is_none());
        assert!(OtpCode::parse("123456789", 9).is_none());
        assert!(OtpCode::parse("", 0).is_none());
        assert!(OtpCode::parse("1", u32::MAX).is_none());
    }

    #[test]
    fn debug_never_shows_codes() {
        let otp = OtpCode::parse("123456", 6).expect("valid code");
        assert_eq!(format!("{otp:?}"), "OtpCode(***)");
        let rc = RecoveryCode::parse("abcd-efgh-ijkl-mnop").expect("valid code");
        assert_eq!(format!("{rc:?}"), "RecoveryCode(***)");
        let sf = SecondFactor::Recovery(rc);
        assert!(!format!("{sf:?}").contains("abcd"));
    }

    #[test]
    fn recovery_parse_examples() {
        let rc = RecoveryCode::parse("ABCD-efgh ijkl-MNOP").expect("valid code");
        assert_eq!(rc.normalized(), "abcdefghijklmnop");
        assert_eq!(rc.display(), "abcd-efgh-ijkl-mnop");
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mno").is_none());
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mnopq").is_none());
        // 0, 1, 8, 9 are not in the RFC 4648 base32 alphabet.
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mno1").is_none());
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mno8").is_none());
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mnoé").is_none());
        assert!(RecoveryCode::parse("").is_none());
    }

    #[test]
    fn second_factor_dispatch() {
        assert_eq!(
            SecondFactor::parse("123 456", 6),
            OtpCode::parse("123456", 6).map(SecondFactor::Totp)
        );
        assert!(matches!(
            SecondFactor::parse("abcd-efgh-ijkl-mnop", 6),
            Some(SecondFactor::Recovery(_))
        ));
        // Right shape for 8 digits but the account uses 6: neither kind.
        assert!(SecondFactor::parse("12345678", 6).is_none());
        assert!(SecondFactor::parse("nonsense", 6).is_none());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>(), digits in any::<u32>()) {
            let _ = OtpCode::parse(&s, digits);
            let _ = RecoveryCode::parse(&s);
            let _ = SecondFactor::parse(&s, digits);
        }

        #[test]
        fn digit_strings_with_spaces_parse(
            (digits, raw) in (6u32..=8).prop_flat_map(|d| {
                (Just(d), proptest::collection::vec((0u32..10, 0usize..3), d as usize))
            })
        ) {
            let plain: String = raw.iter().map(|&(d, _)| char::from(b'0' + d as u8)).collect();
            let spaced: String = raw
                .iter()
                .map(|&(d, spaces)| format!("{}{}", " ".repeat(spaces), d))
                .collect();
            let expected: u32 = plain.parse().expect("ascii digits");
            let code = OtpCode::parse(&spaced, digits);
            prop_assert_eq!(code.map(|c| c.value()), Some(expected));
            prop_assert_eq!(code.map(|c| c.digits()), Some(digits));
        }

        #[test]
        fn generated_recovery_codes_round_trip(_seed in any::<u8>()) {
            let rc = RecoveryCode::generate();
            let n = rc.normalized();
            prop_assert_eq!(n.len(), RECOVERY_CODE_LEN);
            prop_assert!(n.chars().all(|c| matches!(c, 'a'..='z' | '2'..='7')));
            let shown = rc.display();
            prop_assert_eq!(RecoveryCode::parse(&shown), Some(rc.clone()));
            prop_assert_eq!(RecoveryCode::parse(&shown.to_uppercase()), Some(rc.clone()));
            prop_assert_eq!(RecoveryCode::parse(&shown.replace('-', "")), Some(rc.clone()));
        }
    }
}
