//! Sealing of the OAuth `state` parameter: an opaque blob (the OAuth functions decide what is
//! in it, typically tenant, user, PKCE verifier, return URL and an expiry) encrypted and
//! authenticated with the configuration's OAuth-state key, so the callback can trust what it
//! gets back from the provider's redirect.
//!
//! Layout: version(1) | nonce(12) | ciphertext | tag(16), as URL-safe base64 without padding
//! so it can travel in a query string unescaped.
//!
//! The purpose string is part of the associated data: a blob sealed for one purpose (say
//! "oauth-state/onedrive") does not open for another. There is a single state key with no key
//! id: states live for minutes, so rotating the key only fails the logins in flight.
//!
//! Expiry is not enforced here; the blob must carry its own deadline, checked by the caller.

use aes_gcm::aead::{AeadInOut, Generate, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use std::fmt;

use super::VaultError;

/// Length of the OAuth-state key.
pub const STATE_KEY_LEN: usize = 32;

const STATE_FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const STATE_AD_LABEL: &[u8] = b"quodsi.cloud-connections.oauth-state";
/// Sealed states arrive from the internet in a query string; anything longer than this is not
/// one of ours, and is refused before it is decoded.
const MAX_SEALED_LEN: usize = 8 * 1024;

/// Seals and opens OAuth `state` values.
pub struct StateSealer {
    // Zeroizes its key schedule on drop (the aes-gcm `zeroize` feature).
    cipher: Aes256Gcm,
}

impl fmt::Debug for StateSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateSealer([redacted])")
    }
}

fn state_ad(purpose: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(STATE_AD_LABEL.len() + 5 + purpose.len());
    ad.extend_from_slice(STATE_AD_LABEL);
    ad.push(STATE_FORMAT_V1);
    // Length-prefixed so that label, version and purpose cannot be re-split ambiguously.
    ad.extend_from_slice(&(purpose.len() as u64).to_be_bytes());
    ad.extend_from_slice(purpose.as_bytes());
    ad
}

impl StateSealer {
    pub fn new(key: &SecretBox<[u8; STATE_KEY_LEN]>) -> StateSealer {
        StateSealer { cipher: Aes256Gcm::new(key.expose_secret().into()) }
    }

    /// Encrypts `blob` for `purpose`; the result is URL-safe base64 without padding.
    pub fn seal(&self, purpose: &str, blob: &[u8]) -> String {
        let mut out = Vec::with_capacity(1 + NONCE_LEN + blob.len() + TAG_LEN);
        out.push(STATE_FORMAT_V1);
        let nonce = Nonce::<Aes256Gcm>::generate();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(blob);
        // Only plaintexts over 64 GiB are refused by AES-GCM; no state blob comes near.
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &state_ad(purpose), out[1 + NONCE_LEN..].as_mut().into())
            .expect("state blob shorter than the AES-GCM limit");
        out.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(&out)
    }

    /// Decrypts a value made by [`StateSealer::seal`] for the same purpose. Fails closed on
    /// any alteration, on another purpose and on another key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<SecretSlice<u8>, VaultError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(VaultError::TooLong);
        }
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| VaultError::Encoding)?;
        let (&version, rest) = raw.split_first().ok_or(VaultError::Truncated)?;
        if version != STATE_FORMAT_V1 {
            return Err(VaultError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::Truncated);
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| VaultError::Truncated)?;
        let tag = Tag::try_from(tag).map_err(|_| VaultError::Truncated)?;
        let mut buf = body.to_vec();
        match self.cipher.decrypt_inout_detached(&nonce, &state_ad(purpose), buf.as_mut_slice().into(), &tag) {
            Ok(()) => Ok(SecretSlice::from(buf)),
            Err(_) => {
                buf.zeroize();
                Err(VaultError::Authentication)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> StateSealer {
        StateSealer::new(&SecretBox::init_with_mut(|k: &mut [u8; 32]| k.fill(byte)))
    }

    #[test]
    fn seals_to_unpadded_url_safe_base64_and_opens_back() {
        let s = sealer(1);
        let blob = br#"{"tenant":"t","verifier":"v","exp":1}"#;
        let sealed = s.seal("oauth-state", blob);
        assert!(sealed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{sealed}");
        let opened = s.open("oauth-state", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), blob);
        // Random nonce: the same blob never seals to the same string twice.
        assert_ne!(sealed, s.seal("oauth-state", blob));
    }

    #[test]
    fn other_purpose_other_key_and_tampering_fail_closed() {
        let s = sealer(1);
        let sealed = s.seal("oauth-state/onedrive", b"blob");
        assert_eq!(s.open("oauth-state/gdrive", &sealed).unwrap_err(), VaultError::Authentication);
        assert_eq!(sealer(2).open("oauth-state/onedrive", &sealed).unwrap_err(), VaultError::Authentication);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let bad = URL_SAFE_NO_PAD.encode(&bad);
            assert!(s.open("oauth-state/onedrive", &bad).is_err(), "byte {i}");
        }
        for len in 0..raw.len() {
            let cut = URL_SAFE_NO_PAD.encode(&raw[..len]);
            assert!(s.open("oauth-state/onedrive", &cut).is_err(), "length {len}");
        }
        let mut v2 = raw.clone();
        v2[0] = 2;
        assert_eq!(
            s.open("oauth-state/onedrive", &URL_SAFE_NO_PAD.encode(&v2)).unwrap_err(),
            VaultError::UnknownVersion(2)
        );
    }

    #[test]
    fn malformed_or_oversized_input_is_refused_before_decryption() {
        let s = sealer(1);
        assert_eq!(s.open("p", "not base64!").unwrap_err(), VaultError::Encoding);
        assert_eq!(s.open("p", "AAAA==").unwrap_err(), VaultError::Encoding);
        assert_eq!(s.open("p", &"A".repeat(MAX_SEALED_LEN + 1)).unwrap_err(), VaultError::TooLong);
        assert_eq!(s.open("p", "").unwrap_err(), VaultError::Truncated);
    }
}
