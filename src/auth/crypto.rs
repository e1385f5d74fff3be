//! Sealing of TOTP secrets at rest with XChaCha20-Poly1305 under the server
//! key: a random 192-bit nonce per record and the owner's user id as
//! associated data, so a sealed secret can't be moved to another account.
//! Also loads (or creates, mode 0600) the key file, and the decryption keys
//! of a rotation (keys that open secrets but never seal new ones).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Length of the server key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a sealed record's nonce in bytes.
pub const NONCE_LEN: usize = 24;

/// A TOTP secret as stored: nonce and ciphertext (with tag).
pub struct Sealed {
    /// Random per record.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the Poly1305 tag.
    pub ciphertext: Vec<u8>,
}

/// Seals secrets under one key and opens them under it or, failing that,
/// under the decryption keys of a key rotation.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Keys that only open (`--decryption-key-file`), tried in order after
    /// `cipher`; empty outside a rotation.
    openers: Vec<XChaCha20Poly1305>,
}

/// Opening failed: wrong key, tampered record, or a record of another user.
#[derive(Debug, thiserror::Error)]
#[error("sealed secret failed authentication")]
pub struct OpenError;

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&Key::from(*key)),
            openers: Vec::new(),
        }
    }

    /// This sealer, also opening secrets sealed under `key` (which it never
    /// seals under).
    pub fn also_opening(mut self, key: &[u8; KEY_LEN]) -> Sealer {
        self.openers.push(XChaCha20Poly1305::new(&Key::from(*key)));
        self
    }

    /// [`Self::also_opening`] the key of each file in `files`; a missing file
    /// is an error (a decryption key is never created: a mistyped path would
    /// otherwise pass unnoticed).
    pub fn also_opening_files(self, files: &[std::path::PathBuf]) -> anyhow::Result<Sealer> {
        files.iter().try_fold(self, |sealer, path| {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading decryption key file {}", path.display()))?,
            );
            let key = Zeroizing::new(
                parse_key(&text)
                    .with_context(|| format!("reading decryption key file {}", path.display()))?,
            );
            Ok(sealer.also_opening(&key))
        })
    }

    /// Loads the key from `hex_key` when given, otherwise from `file`,
    /// creating the file with a fresh random key (mode 0600) if it is missing.
    pub fn load(hex_key: Option<&SecretString>, file: &Path) -> anyhow::Result<Sealer> {
        let key = match hex_key {
            Some(hex_key) => parse_key(hex_key.expose_secret())
                .context("TWOFACTOR_ENCRYPTION_KEY / --encryption-key")?,
            None => load_or_create_key_file(file)?,
        };
        Ok(Sealer::new(&key))
    }

    /// Seals `plaintext` for `user_id`.
    pub fn seal(&self, user_id: i64, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let aad = associated_data(user_id);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Only fails for messages near 2^38 bytes; a TOTP secret is 20.
            .expect("XChaCha20-Poly1305 cannot fail on a short message");
        Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a record sealed for `user_id`.
    pub fn open(
        &self,
        user_id: i64,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let nonce = <&XNonce>::try_from(nonce).map_err(|_| OpenError)?;
        let aad = associated_data(user_id);
        let payload = || Payload {
            msg: ciphertext,
            aad: &aad,
        };
        std::iter::once(&self.cipher)
            .chain(&self.openers)
            .find_map(|cipher| cipher.decrypt(nonce, payload()).ok())
            .map(Zeroizing::new)
            .ok_or(OpenError)
    }
}

fn associated_data(user_id: i64) -> Vec<u8> {
    let mut aad = b"twofactor/totp-secret/v1/".to_vec();
    aad.extend_from_slice(&user_id.to_be_bytes());
    aad
}

/// Fills `buf` from the OS CSPRNG. A machine whose RNG fails cannot issue
/// secrets safely, so this is the one place that panics rather than degrade.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator failed");
}

fn parse_key(text: &str) -> anyhow::Result<[u8; KEY_LEN]> {
    let bytes = Zeroizing::new(hex::decode(text.trim()).ok().unwrap_or_default());
    let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) else {
        bail!("the encryption key must be {} hex characters", KEY_LEN * 2);
    };
    Ok(key)
}

/// The key in the file at `path`, or a fresh random one written there
/// (mode 0600) when the file is missing.
pub fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; KEY_LEN]> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            parse_key(&text).with_context(|| format!("reading key file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path),
        Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
    }
}

fn create_key_file(path: &Path) -> anyhow::Result<[u8; KEY_LEN]> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let mut key = [0u8; KEY_LEN];
    fill_random(&mut key);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    let text = Zeroizing::new(hex::encode(key));
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))?;
    tracing::info!(path = %path.display(), "created a new encryption key file");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let sealer = Sealer::new(&[7; KEY_LEN]);
        let sealed = sealer.seal(42, b"12345678901234567890");
        assert_ne!(sealed.ciphertext[..20], b"12345678901234567890"[..]);
        let opened = sealer.open(42, &sealed.nonce, &sealed.ciphertext).unwrap();
        assert_eq!(opened.as_slice(), b"12345678901234567890");
        assert!(sealer.open(43, &sealed.nonce, &sealed.ciphertext).is_err());
        let other = Sealer::new(&[8; KEY_LEN]);
        assert!(other.open(42, &sealed.nonce, &sealed.ciphertext).is_err());
    }

    #[test]
    fn a_decryption_key_opens_what_it_sealed_but_seals_nothing() {
        let old = Sealer::new(&[7; KEY_LEN]);
        let sealed_old = old.seal(42, b"old secret");
        let rotating = Sealer::new(&[8; KEY_LEN]).also_opening(&[7; KEY_LEN]);
        let opened = rotating
            .open(42, &sealed_old.nonce, &sealed_old.ciphertext)
            .unwrap();
        assert_eq!(opened.as_slice(), b"old secret");
        assert!(
            rotating
                .open(43, &sealed_old.nonce, &sealed_old.ciphertext)
                .is_err()
        );
        // New seals are under the sealing key only.
        let sealed_new = rotating.seal(42, b"new secret");
        assert!(
            old.open(42, &sealed_new.nonce, &sealed_new.ciphertext)
                .is_err()
        );
        let new_only = Sealer::new(&[8; KEY_LEN]);
        assert!(
            new_only
                .open(42, &sealed_new.nonce, &sealed_new.ciphertext)
                .is_ok()
        );
    }

    #[test]
    fn a_missing_decryption_key_file_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.key");
        let err = Sealer::new(&[7; KEY_LEN])
            .also_opening_files(std::slice::from_ref(&path))
            .err()
            .expect("a missing decryption key is refused");
        assert!(
            format!("{err:#}").contains("decryption key file"),
            "{err:#}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn two_seals_of_one_secret_differ() {
        let sealer = Sealer::new(&[7; KEY_LEN]);
        let a = sealer.seal(1, b"secret");
        let b = sealer.seal(1, b"secret");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let a = load_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_key_file(&path).unwrap(), a);
    }

    #[test]
    fn a_malformed_key_is_refused_without_echoing_it() {
        let err = parse_key("not-a-key").unwrap_err().to_string();
        assert!(!err.contains("not-a-key"));
    }
}
