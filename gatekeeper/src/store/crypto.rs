//! Envelope encryption at rest: a fresh AES-256-GCM data key per record, wrapped by the
//! master key read from a key file. The record id is bound as associated data, so a
//! ciphertext moved to another record's row does not decrypt.

use crate::error::{GkError, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use std::path::Path;

/// The master key; never printed.
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// A record as stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Nonce of the record's encryption.
    pub data_nonce: Vec<u8>,
    /// The encrypted record.
    pub ciphertext: Vec<u8>,
    /// Nonce of the data key's wrapping.
    pub key_nonce: Vec<u8>,
    /// The data key, encrypted by the master key.
    pub wrapped_key: Vec<u8>,
}

impl MasterKey {
    /// Reads a key file: 64 hex digits (an optional 0x and trailing newline allowed).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            GkError::Config(format!(
                "cannot read master key file {}: {e}",
                path.display()
            ))
        })?;
        let hex = text.trim().trim_start_matches("0x");
        let bytes = alloy::hex::decode(hex)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                GkError::Config(format!(
                    "master key file {} must hold 64 hex digits",
                    path.display()
                ))
            })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Writes a new random key file readable only by its owner; refuses to overwrite.
    pub fn generate(path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| GkError::Config(format!("cannot create {}: {e}", path.display())))?;
        writeln!(f, "{}", alloy::hex::encode(key))
            .map_err(|e| GkError::Config(format!("cannot write {}: {e}", path.display())))?;
        Ok(())
    }

    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)))
    }

    /// Encrypts `plaintext` for `record_id` under a fresh data key.
    pub fn seal(&self, record_id: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        let mut rng = rand::thread_rng();
        let mut data_key = [0u8; 32];
        rng.fill_bytes(&mut data_key);
        let mut data_nonce = [0u8; 12];
        rng.fill_bytes(&mut data_nonce);
        let mut key_nonce = [0u8; 12];
        rng.fill_bytes(&mut key_nonce);
        let data_cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
        let ciphertext = data_cipher
            .encrypt(
                Nonce::from_slice(&data_nonce),
                Payload {
                    msg: plaintext,
                    aad: record_id,
                },
            )
            .map_err(|_| GkError::Internal("encryption failed".into()))?;
        let wrapped_key = self
            .0
            .encrypt(
                Nonce::from_slice(&key_nonce),
                Payload {
                    msg: &data_key,
                    aad: record_id,
                },
            )
            .map_err(|_| GkError::Internal("key wrapping failed".into()))?;
        data_key.fill(0);
        Ok(Sealed {
            data_nonce: data_nonce.to_vec(),
            ciphertext,
            key_nonce: key_nonce.to_vec(),
            wrapped_key,
        })
    }

    /// Decrypts a stored record; fails if any part was altered or moved.
    pub fn open(&self, record_id: &[u8], s: &Sealed) -> Result<Vec<u8>> {
        if s.data_nonce.len() != 12 || s.key_nonce.len() != 12 {
            return Err(GkError::Internal("stored record is malformed".into()));
        }
        let mut data_key = self
            .0
            .decrypt(
                Nonce::from_slice(&s.key_nonce),
                Payload {
                    msg: &s.wrapped_key,
                    aad: record_id,
                },
            )
            .map_err(|_| {
                GkError::Internal("the stored data key does not decrypt (altered at rest?)".into())
            })?;
        if data_key.len() != 32 {
            return Err(GkError::Internal(
                "stored data key has the wrong size".into(),
            ));
        }
        let data_cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
        data_key.fill(0);
        data_cipher
            .decrypt(
                Nonce::from_slice(&s.data_nonce),
                Payload {
                    msg: &s.ciphertext,
                    aad: record_id,
                },
            )
            .map_err(|_| {
                GkError::Internal("the stored record does not decrypt (altered at rest?)".into())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = MasterKey::from_bytes(&[7u8; 32]);
        let s = k.seal(b"id-1", b"{\"resourceType\":\"Patient\"}").unwrap();
        assert_eq!(
            k.open(b"id-1", &s).unwrap(),
            b"{\"resourceType\":\"Patient\"}"
        );
        assert!(k.open(b"id-2", &s).is_err(), "bound to its record id");
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(k.open(b"id-1", &t).is_err(), "tampered ciphertext");
        let other = MasterKey::from_bytes(&[8u8; 32]);
        assert!(other.open(b"id-1", &s).is_err(), "other master key");
        let s2 = k.seal(b"id-1", b"{\"resourceType\":\"Patient\"}").unwrap();
        assert_ne!(s.wrapped_key, s2.wrapped_key, "a fresh data key per record");
    }
}
