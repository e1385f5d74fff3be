//! TOTP (RFC 6238) over HOTP (RFC 4226): shared-secret generation and base32
//! encoding, code generation, verification with a skew window and replay
//! floor, and the Google Authenticator provisioning URI.
//!
//! All MACs come from the RustCrypto `hmac` crate; this module only does the
//! RFC 4226 dynamic truncation around them. Nothing here logs or formats secrets
//! except into the provisioning URI, which exists to carry the secret.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::domain::otp::OtpCode;

/// The HMAC hash function of a TOTP secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Algorithm {
    /// HMAC-SHA1, the RFC 4226 default and the only one every authenticator app supports.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in provisioning URIs and stored in the database: "SHA1", "SHA256" or "SHA512".
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses "SHA1", "SHA256" or "SHA512", case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// The parameters of a TOTP credential.
///
/// `digits` is expected in `6..=8` and `period` to be non-zero; callers should
/// validate configuration, but nothing here panics on other values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    /// HMAC hash function.
    pub algorithm: Algorithm,
    /// Number of decimal digits in a code.
    pub digits: u32,
    /// Length of a time step in seconds.
    pub period: u64,
}

impl Default for TotpParams {
    /// SHA1, 6 digits, 30 seconds: what every authenticator app assumes.
    fn default() -> Self {
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// Length in bytes of generated secrets (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// Generates a fresh secret from the OS CSPRNG.
///
/// # Panics
/// Only if the operating system's random number generator fails.
pub fn generate_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    // Without an OS RNG we cannot issue secrets at all; failing loudly is correct.
    getrandom::fill(&mut secret).expect("OS random number generator failed");
    secret
}

/// Encodes a secret as RFC 4648 base32, uppercase, without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// Why a base32 secret could not be decoded. The message never echoes the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretError {
    /// Nothing left after removing spaces, dashes and padding.
    Empty,
    /// Not valid RFC 4648 base32.
    Invalid,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretError::Empty => "secret is empty",
            SecretError::Invalid => "secret is not valid base32",
        })
    }
}

impl std::error::Error for SecretError {}

/// Decodes a base32 secret as users paste it: either case, spaces and '-'
/// ignored, trailing '=' padding ignored.
///
/// # Errors
/// [`SecretError::Empty`] if nothing is left after cleaning, [`SecretError::Invalid`] if the
/// rest is not canonical RFC 4648 base32.
pub fn decode_secret(s: &str) -> Result<Vec<u8>, SecretError> {
    let cleaned: String = s
        .chars()
        .filter(|&c| c != ' ' && c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match cleaned.trim_end_matches('=') {
        "" => Err(SecretError::Empty),
        b32 => BASE32_NOPAD
            .decode(b32.as_bytes())
            .map_err(|_| SecretError::Invalid),
    }
}

/// Keys an HMAC. HMAC accepts keys of any length, so this cannot fail.
fn keyed<M: Mac + KeyInit>(key: &[u8]) -> M {
    // `new_from_slice` only errs for fixed-key-size MACs; HMAC hashes or pads any key.
    <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// RFC 4226 HOTP from an already-keyed HMAC (cloned, so the caller can reuse it).
fn hotp_keyed<M: Mac + Clone>(keyed: &M, counter: u64, digits: u32) -> u32 {
    let mut mac = keyed.clone();
    mac.update(&counter.to_be_bytes());
    let out = mac.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 §5.3). Every supported output is >= 20 bytes
    // and offset <= 15, so offset + 3 <= 18 is always in bounds.
    let offset = usize::from(out[out.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        out[offset] & 0x7f,
        out[offset + 1],
        out[offset + 2],
        out[offset + 3],
    ]);
    // 10^digits overflows u32 from 10 digits on; the 31-bit value then needs no reduction.
    match 10u32.checked_pow(digits) {
        Some(modulus) => binary % modulus,
        None => binary,
    }
}

/// RFC 4226 HOTP: HMAC of the big-endian counter, dynamic truncation, mod 10^digits.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    fn with<M: Mac + KeyInit + Clone>(key: &[u8], counter: u64, digits: u32) -> u32 {
        hotp_keyed(&keyed::<M>(key), counter, digits)
    }
    let with = match algorithm {
        Algorithm::Sha1 => with::<Hmac<Sha1>>,
        Algorithm::Sha256 => with::<Hmac<Sha256>>,
        Algorithm::Sha512 => with::<Hmac<Sha512>>,
    };
    with(key, counter, digits)
}

/// The TOTP time step containing `unix_time`: `unix_time / period`
/// (a zero period is treated as one second rather than dividing by zero).
pub fn time_step(params: &TotpParams, unix_time: u64) -> u64 {
    unix_time / params.period.max(1)
}

/// The code for `unix_time`, zero-padded to `params.digits`.
pub fn generate(params: &TotpParams, key: &[u8], unix_time: u64) -> String {
    let step = time_step(params, unix_time);
    let code = hotp(params.algorithm, key, step, params.digits);
    // A u32 has at most 10 decimal digits; capping the width keeps absurd configs cheap.
    let width = params.digits.min(10) as usize;
    format!("{code:0width$}")
}

/// Checks `code` against steps `now-skew ..= now+skew`, ignoring any step `<= not_after` (the
/// replay floor: steps already used). Returns the matched step. Compares in constant time
/// (`subtle::ConstantTimeEq` on the numeric value) and does NOT exit early: every step of the
/// window is computed, so timing does not reveal which step matched. Keys the HMAC once and
/// clones the keyed state per step.
///
/// If the code matches several fresh steps (a 10^-digits coincidence), the earliest is returned.
/// A code typed with a different number of digits than `params.digits` never matches.
pub fn verify(
    params: &TotpParams,
    key: &[u8],
    code: &OtpCode,
    unix_time: u64,
    skew: u64,
    not_after: Option<u64>,
) -> Option<u64> {
    // Picking a monomorphised fn keeps the per-algorithm hot loop statically typed.
    let verify_with = match params.algorithm {
        Algorithm::Sha1 => verify_with::<Hmac<Sha1>>,
        Algorithm::Sha256 => verify_with::<Hmac<Sha256>>,
        Algorithm::Sha512 => verify_with::<Hmac<Sha512>>,
    };
    let now = time_step(params, unix_time);
    verify_with(
        params,
        key,
        code,
        now.saturating_sub(skew),
        now.saturating_add(skew),
        not_after,
    )
}

/// Like [`verify`], with the window widened towards a device's known clock
/// drift: steps from `now + min(0, drift) - skew` to `now + max(0, drift) +
/// skew`, so a code is accepted both around the device's observed offset
/// (as django-otp centres it) and around the true time (a phone whose clock
/// was since corrected). The caller bounds `drift`.
pub fn verify_with_drift(
    params: &TotpParams,
    key: &[u8],
    code: &OtpCode,
    unix_time: u64,
    drift: i64,
    skew: u64,
    not_after: Option<u64>,
) -> Option<u64> {
    let verify_with = match params.algorithm {
        Algorithm::Sha1 => verify_with::<Hmac<Sha1>>,
        Algorithm::Sha256 => verify_with::<Hmac<Sha256>>,
        Algorithm::Sha512 => verify_with::<Hmac<Sha512>>,
    };
    let now = time_step(params, unix_time);
    let low = now.saturating_add_signed(drift.min(0)).saturating_sub(skew);
    let high = now.saturating_add_signed(drift.max(0)).saturating_add(skew);
    verify_with(params, key, code, low, high, not_after)
}

fn verify_with<M: Mac + KeyInit + Clone>(
    params: &TotpParams,
    key: &[u8],
    code: &OtpCode,
    low: u64,
    high: u64,
    not_after: Option<u64>,
) -> Option<u64> {
    // The width is public (it is the length of what the client sent), so this may exit early.
    if code.digits() != params.digits {
        return None;
    }
    let mac = keyed::<M>(key);
    let mut found = Choice::from(0);
    let mut matched_step = 0u64;
    for step in low..=high {
        let candidate = hotp_keyed(&mac, step, params.digits);
        // The replay floor and the step numbers are public; only the code comparison is secret.
        let fresh = Choice::from(u8::from(not_after.is_none_or(|floor| step > floor)));
        let hit = candidate.ct_eq(&code.value()) & fresh;
        matched_step.conditional_assign(&step, hit & !found);
        found |= hit;
    }
    bool::from(found).then_some(matched_step)
}

/// Everything except RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) is escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Google Authenticator Key URI: `otpauth://totp/<Issuer>:<account>?secret=<B32>&issuer=<Issuer>`
/// plus `&algorithm=SHA256`, `&digits=8`, `&period=60` only when they differ from the defaults.
/// Issuer and account are percent-encoded in the label and the issuer again in the query,
/// leaving only unreserved characters unencoded (so ' ' -> %20, '@' -> %40, '+' -> %2B, ':' -> %3A).
pub fn provisioning_uri(issuer: &str, account: &str, secret: &[u8], params: &TotpParams) -> String {
    let issuer_enc = utf8_percent_encode(issuer, URI_COMPONENT);
    let account_enc = utf8_percent_encode(account, URI_COMPONENT);
    let mut uri = format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}",
        encode_secret(secret)
    );
    let defaults = TotpParams::default();
    let extras = [
        (params.algorithm != defaults.algorithm)
            .then(|| format!("&algorithm={}", params.algorithm.as_str())),
        (params.digits != defaults.digits).then(|| format!("&digits={}", params.digits)),
        (params.period != defaults.period).then(|| format!("&period={}", params.period)),
    ];
    uri.extend(extras.into_iter().flatten());
    uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
    const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    fn otp(s: &str, digits: u32) -> OtpCode {
        OtpCode::parse(s, digits).expect("test code must parse")
    }

    fn params(algorithm: Algorithm, digits: u32, period: u64) -> TotpParams {
        TotpParams {
            algorithm,
            digits,
            period,
        }
    }

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in (0u64..).zip(expected) {
            let got = hotp(Algorithm::Sha1, SEED20, counter, 6);
            assert_eq!(got, want, "counter {counter}");
        }
        // RFC 6238 T=1111111109 truncated to 6 digits is "081804": the leading zero is kept.
        let code = generate(&TotpParams::default(), SEED20, 1111111109);
        assert_eq!(code, "081804");
    }

    #[test]
    fn rfc6238_appendix_b() {
        let vectors: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1111111109, ["07081804", "68084774", "25091201"]),
            (1111111111, ["14050471", "67062674", "99943326"]),
            (1234567890, ["89005924", "91819424", "93441116"]),
            (2000000000, ["69279037", "90698825", "38618901"]),
            (20000000000, ["65353130", "77737706", "47863826"]),
        ];
        for (time, wants) in vectors {
            for ((algorithm, seed), want) in
                ALL.into_iter().zip([SEED20, SEED32, SEED64]).zip(wants)
            {
                let p = params(algorithm, 8, 30);
                assert_eq!(generate(&p, seed, time), want, "{algorithm:?} at {time}");
                assert_eq!(
                    verify(&p, seed, &otp(want, 8), time, 0, None),
                    Some(time / 30)
                );
            }
        }
    }

    #[test]
    fn verify_window_and_replay_floor() {
        let p = TotpParams::default();
        let now = 1_700_000_000u64;
        let step = time_step(&p, now);
        let check = |s: u64, floor: Option<u64>| {
            let code = otp(&format!("{:06}", hotp(Algorithm::Sha1, SEED20, s, 6)), 6);
            verify(&p, SEED20, &code, now, 1, floor)
        };
        for s in [step - 1, step, step + 1] {
            assert_eq!(check(s, None), Some(s));
        }
        assert_eq!(check(step - 2, None), None);
        assert_eq!(check(step + 2, None), None);
        // Already-used steps are refused; later ones in the window still work.
        assert_eq!(check(step, Some(step)), None);
        assert_eq!(check(step - 1, Some(step)), None);
        assert_eq!(check(step + 1, Some(step)), Some(step + 1));
        assert_eq!(check(step, Some(step - 1)), Some(step));
    }

    #[test]
    fn the_drift_window_spans_the_offset_and_the_true_time() {
        let p = TotpParams::default();
        let now = 1_700_000_000u64;
        let step = time_step(&p, now);
        let check = |s: u64, drift: i64| {
            let code = otp(&format!("{:06}", hotp(Algorithm::Sha1, SEED20, s, 6)), 6);
            verify_with_drift(&p, SEED20, &code, now, drift, 1, None)
        };
        // Fast phone, 3 steps ahead: steps now-1 ..= now+4 are accepted.
        for s in step - 1..=step + 4 {
            assert_eq!(check(s, 3), Some(s));
        }
        assert_eq!(check(step + 5, 3), None);
        assert_eq!(check(step - 2, 3), None);
        // Slow phone.
        assert_eq!(check(step - 3, -2), Some(step - 3));
        assert_eq!(check(step - 4, -2), None);
        assert_eq!(check(step + 1, -2), Some(step + 1));
        // No drift: the plain window.
        assert_eq!(check(step + 2, 0), None);
    }

    #[test]
    fn verify_rejects_wrong_code_and_width() {
        let p = TotpParams::default();
        let now = 1_700_000_000u64;
        let right = hotp(Algorithm::Sha1, SEED20, time_step(&p, now), 6);
        let wrong = otp(&format!("{:06}", (right + 1) % 1_000_000), 6);
        assert_eq!(verify(&p, SEED20, &wrong, now, 1, None), None);
        let eight = otp(&format!("{right:08}"), 8);
        assert_eq!(verify(&p, SEED20, &eight, now, 1, None), None);
    }

    #[test]
    fn verify_near_epoch_and_odd_params() {
        let code = otp(&format!("{:06}", hotp(Algorithm::Sha1, SEED20, 0, 6)), 6);
        let d = TotpParams::default();
        assert_eq!(verify(&d, SEED20, &code, 0, 2, None), Some(0));
        assert_eq!(time_step(&params(Algorithm::Sha1, 6, 0), 42), 42);
        assert!(generate(&params(Algorithm::Sha1, 40, 30), SEED20, 0).len() <= 10);
    }

    #[test]
    fn algorithm_names() {
        for a in ALL {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_eq!(Algorithm::parse(&a.as_str().to_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::parse("md5"), None);
        assert_eq!(Algorithm::parse(""), None);
    }

    #[test]
    fn secret_encoding() {
        assert_eq!(encode_secret(SEED20), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let pasted = "gezd gnbv-gy3t qojq GEZDGNBVGY3TQOJQ";
        assert_eq!(decode_secret(pasted).as_deref(), Ok(SEED20));
        assert_eq!(decode_secret("MZXW6===").as_deref(), Ok(&b"foo"[..]));
        assert_eq!(decode_secret(""), Err(SecretError::Empty));
        assert_eq!(decode_secret(" - ="), Err(SecretError::Empty));
        assert_eq!(decode_secret("GEZD1"), Err(SecretError::Invalid));
        assert_eq!(decode_secret("ÄÖÜ"), Err(SecretError::Invalid));
        assert!(!SecretError::Invalid.to_string().contains("GEZD1"));
        assert_ne!(generate_secret(), generate_secret());
    }

    #[test]
    fn provisioning_uri_defaults() {
        let p = TotpParams::default();
        let uri = provisioning_uri("Acme Corp", "alice+test@example.com", SEED20, &p);
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp:alice%2Btest%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp"
        );
        let secret = uri
            .split("secret=")
            .nth(1)
            .and_then(|s| s.split('&').next());
        assert_eq!(decode_secret(secret.unwrap_or("")).as_deref(), Ok(SEED20));
    }

    #[test]
    fn provisioning_uri_non_defaults_and_colons() {
        let uri = provisioning_uri("A:B", "c:d", b"k", &params(Algorithm::Sha256, 8, 60));
        let want =
            "otpauth://totp/A%3AB:c%3Ad?secret=NM&issuer=A%3AB&algorithm=SHA256&digits=8&period=60";
        assert_eq!(uri, want);
    }

    proptest! {
        #[test]
        fn uri_round_trips(
            issuer in any::<String>(),
            account in any::<String>(),
            secret in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let uri = provisioning_uri(&issuer, &account, &secret, &TotpParams::default());
            let url = url::Url::parse(&uri).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(url.scheme(), "otpauth");
            prop_assert_eq!(url.host_str(), Some("totp"));
            let path = percent_encoding::percent_decode_str(url.path())
                .decode_utf8()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(path.as_ref(), format!("/{issuer}:{account}"));
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            prop_assert_eq!(decode_secret(&get("secret").unwrap_or_default()), Ok(secret));
            let _ = decode_secret(&issuer); // arbitrary text must not panic either
            prop_assert_eq!(get("issuer"), Some(issuer));
            prop_assert_eq!(pairs.len(), 2);
        }

        #[test]
        fn secret_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..128)) {
            prop_assert_eq!(decode_secret(&encode_secret(&bytes)), Ok(bytes.clone()));
            prop_assert_eq!(decode_secret(&encode_secret(&bytes).to_lowercase()), Ok(bytes));
        }

        #[test]
        fn generated_codes_verify(key in proptest::collection::vec(any::<u8>(), 0..100), t: u64) {
            for algorithm in ALL {
                let p = params(algorithm, 6, 30);
                let code = otp(&generate(&p, &key, t), 6);
                prop_assert_eq!(verify(&p, &key, &code, t, 0, None), Some(time_step(&p, t)));
            }
        }
    }
}
