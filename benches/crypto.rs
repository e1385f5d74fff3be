//! The per-request cryptography, beside the primitive it is built on, so the
//! ratio shows in one run: TOTP verification (right code, wrong code, skew 1;
//! SHA1/SHA256/SHA512) against raw HMAC-SHA1 of 8 bytes, opening a sealed
//! secret, and one argon2id hash at the default (OWASP) parameters.
//!
//! `cargo bench --bench crypto`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use twofactor::auth::crypto::Sealer;
use twofactor::auth::password::Hasher;
use twofactor::auth::totp::{self, Algorithm, TotpParams};
use twofactor::domain::Password;
use twofactor::domain::otp::OtpCode;

const NOW: u64 = 1_795_550_000;

fn raw_hmac(c: &mut Criterion) {
    let key = [7u8; 20];
    let counter = (NOW / 30).to_be_bytes();
    c.bench_function("hmac_sha1_8_bytes", |b| {
        b.iter(|| {
            let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(black_box(&key)).unwrap();
            mac.update(black_box(&counter));
            black_box(mac.finalize().into_bytes())
        })
    });
    c.bench_function("hmac_sha1_8_bytes_x3", |b| {
        b.iter(|| {
            for step in 0..3u64 {
                let mut mac =
                    <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(black_box(&key)).unwrap();
                mac.update(&(NOW / 30 + step).to_be_bytes());
                black_box(mac.finalize().into_bytes());
            }
        })
    });
}

fn totp_verify(c: &mut Criterion) {
    for (name, algorithm, key_len) in [
        ("sha1", Algorithm::Sha1, 20),
        ("sha256", Algorithm::Sha256, 32),
        ("sha512", Algorithm::Sha512, 64),
    ] {
        let key = vec![7u8; key_len];
        let params = TotpParams {
            algorithm,
            digits: 6,
            period: 30,
        };
        let right = OtpCode::parse(&totp::generate(&params, &key, NOW), 6).unwrap();
        let wrong_value = (right.value() + 1) % 1_000_000;
        let wrong = OtpCode::parse(&format!("{wrong_value:06}"), 6).unwrap();
        c.bench_function(&format!("totp_verify_{name}_right_skew1"), |b| {
            b.iter(|| totp::verify(&params, black_box(&key), black_box(&right), NOW, 1, None))
        });
        c.bench_function(&format!("totp_verify_{name}_wrong_skew1"), |b| {
            b.iter(|| totp::verify(&params, black_box(&key), black_box(&wrong), NOW, 1, None))
        });
    }
}

fn aead_open(c: &mut Criterion) {
    let sealer = Sealer::new(&[9u8; 32]);
    let sealed = sealer.seal(42, &[7u8; 20]);
    c.bench_function("aead_open_totp_secret", |b| {
        b.iter(|| {
            sealer
                .open(42, black_box(&sealed.nonce), black_box(&sealed.ciphertext))
                .unwrap()
        })
    });
}

fn argon2_default(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The defaults of `twofactor serve`: 19 MiB, t=2, p=1.
    let hasher = Hasher::new(19_456, 2, 1, 1, 16).unwrap();
    let password = Password::parse("correct horse battery").unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("hash_default_params", |b| {
        b.iter(|| runtime.block_on(hasher.hash(&password)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, raw_hmac, totp_verify, aead_open, argon2_default);
criterion_main!(benches);
