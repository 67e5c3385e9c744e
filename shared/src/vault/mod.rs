//! Token vault: AES-256-GCM encryption of the OAuth tokens stored in `cloud_connections`.
//!
//! Stored layout (format version 1):
//!
//! ```text
//! +---------+--------+-----------------+-----------+---------------------+
//! | version | id_len | key id (id_len) | nonce(12) | ciphertext | tag(16)|
//! +---------+--------+-----------------+-----------+---------------------+
//! ```
//!
//! The key id travels in clear so that a vault holding several keys knows which one to use,
//! and so that a rotation can find the rows still under an old key without decrypting them.
//!
//! The associated data binds the header (version and key id) and the row the token belongs to:
//! tenant id, connection id and the column (access or refresh). A ciphertext copied into another
//! row, another tenant's row or the other column therefore fails authentication, and so does a
//! header edited to point at another key.

mod rotation;
mod state;

pub use rotation::{RotationError, RotationReport, TokenRowStore, rotate_token_keys};
pub use state::{STATE_KEY_LEN, StateSealer};

use aes_gcm::aead::{AeadInOut, Generate, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use crate::db::{ConnectionId, TenantId};

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// The only stored format this code writes and reads.
pub const FORMAT_V1: u8 = 1;
/// Longest key id; the id is stored in every ciphertext, so it is kept short.
pub const MAX_KEY_ID_LEN: usize = 32;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A domain label in the associated data keeps token ciphertexts from ever verifying as
/// anything else encrypted with the same key (and the reverse).
const TOKEN_AD_LABEL: &[u8] = b"quodsi.cloud-connections.token";

/// A 256-bit key, zeroized on drop and redacted in Debug.
pub type TokenKey = SecretBox<[u8; KEY_LEN]>;

/// Everything that can go wrong reading a stored token. None of the variants carries secret
/// material, so they can be logged as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The input ends before the header, nonce and tag are complete.
    #[error("encrypted token is truncated")]
    Truncated,
    /// The first byte names a format this code does not know.
    #[error("encrypted token has unknown format version {0}")]
    UnknownVersion(u8),
    /// The header names a key this vault does not hold (an old key removed too early, or a
    /// tampered header).
    #[error("encrypted token names unknown key id {0:?}")]
    UnknownKeyId(String),
    /// Tag verification failed: the bytes were altered, or they belong to another tenant,
    /// connection or token kind. AES-GCM cannot tell those apart, by design.
    #[error("encrypted token failed authentication")]
    Authentication,
    /// Authentic, but not UTF-8: only possible if something other than this vault wrote it.
    #[error("decrypted token is not valid UTF-8")]
    NotUtf8,
    /// A sealed OAuth state that is not URL-safe base64.
    #[error("sealed value is not valid base64url")]
    Encoding,
    /// A sealed OAuth state longer than any this code produces.
    #[error("sealed value is too long")]
    TooLong,
    /// A key id outside 1..=32 characters of `A-Z a-z 0-9 . _ -`.
    #[error("key id must be 1 to 32 characters of A-Z a-z 0-9 . _ -")]
    InvalidKeyId,
    /// The active key id is not among the keys given to the vault.
    #[error("active key id {0:?} is not among the vault's keys")]
    ActiveKeyMissing(String),
}

/// Name of a token key, stored in clear in every ciphertext. Restricted to a small ASCII
/// alphabet so it can be logged and put in error messages safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(id: impl Into<String>) -> Result<KeyId, VaultError> {
        let id = id.into();
        if is_valid_key_id(id.as_bytes()) { Ok(KeyId(id)) } else { Err(VaultError::InvalidKeyId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Ord and Eq are derived from the inner String, so they agree with str's: map lookups by
// the id parsed from a header need no allocation.
impl Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid_key_id(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Which column a token is stored in. Part of the associated data, so an access token's
/// ciphertext cannot be replayed as the refresh token and the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Access,
    Refresh,
    /// A change subscription's secret (Graph clientState, a Drive channel token) of the
    /// connection: `cloud_sync_subscriptions.encrypted_secret`.
    SubscriptionSecret,
    /// A provider's resumable upload session (Graph `uploadUrl`, Drive session URI: both
    /// pre-authenticated) of the connection, kept in a sync job's checkpoint between
    /// invocations.
    UploadSession,
}

impl TokenKind {
    fn ad_byte(self) -> u8 {
        match self {
            TokenKind::Access => 1,
            TokenKind::Refresh => 2,
            TokenKind::SubscriptionSecret => 3,
            TokenKind::UploadSession => 4,
        }
    }
}

/// The row and column a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenContext {
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub kind: TokenKind,
}

impl TokenContext {
    pub fn new(tenant_id: TenantId, connection_id: ConnectionId, kind: TokenKind) -> TokenContext {
        TokenContext { tenant_id, connection_id, kind }
    }

    pub fn access(tenant_id: TenantId, connection_id: ConnectionId) -> TokenContext {
        TokenContext::new(tenant_id, connection_id, TokenKind::Access)
    }

    pub fn refresh(tenant_id: TenantId, connection_id: ConnectionId) -> TokenContext {
        TokenContext::new(tenant_id, connection_id, TokenKind::Refresh)
    }

    pub fn subscription(tenant_id: TenantId, connection_id: ConnectionId) -> TokenContext {
        TokenContext::new(tenant_id, connection_id, TokenKind::SubscriptionSecret)
    }

    pub fn upload_session(tenant_id: TenantId, connection_id: ConnectionId) -> TokenContext {
        TokenContext::new(tenant_id, connection_id, TokenKind::UploadSession)
    }
}

/// The parsed header of a stored token; borrows from the stored bytes.
struct Header<'a> {
    key_id: &'a str,
    /// Version, id length and id: the bytes bound into the associated data.
    raw: &'a [u8],
    nonce: &'a [u8],
    body: &'a [u8],
    tag: &'a [u8],
}

fn parse(stored: &[u8]) -> Result<Header<'_>, VaultError> {
    let (&version, rest) = stored.split_first().ok_or(VaultError::Truncated)?;
    if version != FORMAT_V1 {
        return Err(VaultError::UnknownVersion(version));
    }
    let (&id_len, rest) = rest.split_first().ok_or(VaultError::Truncated)?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(VaultError::Truncated);
    }
    let (id, rest) = rest.split_at(id_len);
    if !is_valid_key_id(id) {
        return Err(VaultError::UnknownKeyId(String::from_utf8_lossy(id).into_owned()));
    }
    // Validated as ASCII just above, so this cannot fail; mapped anyway rather than unwrapped.
    let key_id = std::str::from_utf8(id).map_err(|_| VaultError::InvalidKeyId)?;
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Header { key_id, raw: &stored[..2 + id_len], nonce, body, tag })
}

fn token_ad(header: &[u8], ctx: &TokenContext) -> Vec<u8> {
    let mut ad = Vec::with_capacity(TOKEN_AD_LABEL.len() + header.len() + 33);
    ad.extend_from_slice(TOKEN_AD_LABEL);
    ad.extend_from_slice(header);
    ad.extend_from_slice(ctx.tenant_id.0.as_bytes());
    ad.extend_from_slice(ctx.connection_id.0.as_bytes());
    ad.push(ctx.kind.ad_byte());
    ad
}

/// The key id a stored token was written with, read from its header without decrypting.
/// A rotation uses it to tell which rows are still under an old key.
pub fn key_id_of(stored: &[u8]) -> Result<&str, VaultError> {
    parse(stored).map(|h| h.key_id)
}

/// Encrypts tokens under the active key and decrypts tokens under any key it holds.
pub struct Vault {
    active: KeyId,
    /// The active header bytes, precomputed because every encryption writes them.
    active_header: Vec<u8>,
    // Aes256Gcm zeroizes its key schedule on drop (the crate's `zeroize` feature).
    ciphers: BTreeMap<KeyId, Aes256Gcm>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("active", &self.active)
            .field("key_ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Vault {
    /// A vault that writes with `active` and reads with any of `keys`.
    pub fn new<'a>(
        active: &KeyId,
        keys: impl IntoIterator<Item = (&'a KeyId, &'a TokenKey)>,
    ) -> Result<Vault, VaultError> {
        let ciphers: BTreeMap<KeyId, Aes256Gcm> = keys
            .into_iter()
            .map(|(id, key)| {
                let cipher = Aes256Gcm::new(key.expose_secret().into());
                (id.clone(), cipher)
            })
            .collect();
        if !ciphers.contains_key(active) {
            return Err(VaultError::ActiveKeyMissing(active.to_string()));
        }
        let mut active_header = Vec::with_capacity(2 + active.0.len());
        active_header.push(FORMAT_V1);
        // KeyId guarantees at most MAX_KEY_ID_LEN bytes, so the length fits a byte.
        active_header.push(active.0.len() as u8);
        active_header.extend_from_slice(active.0.as_bytes());
        Ok(Vault { active: active.clone(), active_header, ciphers })
    }

    /// The vault for a set of token keys (the configuration's `token_keys`).
    pub fn from_keys(keys: &TokenKeys) -> Vault {
        // TokenKeys cannot be built without its active key among its keys, the one thing
        // `new` checks, so this cannot fail.
        Vault::new(keys.active(), keys.keys().iter()).expect("TokenKeys holds its active key")
    }

    /// The key id new ciphertexts are written with.
    pub fn active_key_id(&self) -> &KeyId {
        &self.active
    }

    /// Whether `stored` was written with the active key (false for anything unparsable).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        key_id_of(stored).is_ok_and(|id| id == self.active.as_str())
    }

    /// Encrypts a token for the row and column in `ctx`, under the active key with a fresh
    /// random nonce.
    pub fn encrypt(&self, ctx: TokenContext, plaintext: &SecretString) -> Vec<u8> {
        let plaintext = plaintext.expose_secret().as_bytes();
        let body_start = self.active_header.len() + NONCE_LEN;
        let mut out = Vec::with_capacity(body_start + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&self.active_header);
        // 96-bit random nonces from the OS: the birthday bound (2^32 messages per key at 2^-32 collision
        // risk) is far above the number of token writes between key rotations.
        // `generate` panics only if the OS random source fails; writing a token with a
        // predictable nonce would be worse than failing the request.
        let nonce = Nonce::<Aes256Gcm>::generate();
        out.extend_from_slice(&nonce);
        // Encrypting in place inside the output means the plaintext is never copied into a
        // buffer that outlives this call.
        out.extend_from_slice(plaintext);
        let ad = token_ad(&self.active_header, &ctx);
        let cipher = &self.ciphers[&self.active];
        // AES-GCM refuses only plaintexts over 64 GiB, which a Lambda (10 GiB memory at most)
        // cannot hold; there is no input on which this fails.
        let tag = cipher
            .encrypt_inout_detached(&nonce, &ad, out[body_start..].as_mut().into())
            .expect("token shorter than the AES-GCM limit");
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts a token stored for the row and column in `ctx`. Fails closed on any change to
    /// the bytes and on any mismatch of tenant, connection or kind.
    pub fn decrypt(&self, ctx: TokenContext, stored: &[u8]) -> Result<SecretString, VaultError> {
        let header = parse(stored)?;
        let cipher =
            self.ciphers.get(header.key_id).ok_or_else(|| VaultError::UnknownKeyId(header.key_id.to_owned()))?;
        let ad = token_ad(header.raw, &ctx);
        let nonce = Nonce::<Aes256Gcm>::try_from(header.nonce).map_err(|_| VaultError::Truncated)?;
        let tag = Tag::try_from(header.tag).map_err(|_| VaultError::Truncated)?;
        // Exactly sized, so turning it into the SecretString's boxed str does not reallocate
        // and leave an unzeroized copy behind.
        let mut buf = Vec::with_capacity(header.body.len());
        buf.extend_from_slice(header.body);
        if cipher.decrypt_inout_detached(&nonce, &ad, buf.as_mut_slice().into(), &tag).is_err() {
            // On failure GCM leaves the ciphertext in the buffer, not plaintext; clear it anyway.
            buf.zeroize();
            return Err(VaultError::Authentication);
        }
        match String::from_utf8(buf) {
            Ok(s) => Ok(SecretString::from(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(VaultError::NotUtf8)
            }
        }
    }
}

/// The token-encryption keys: one active for writing, all of them for reading. The fields are
/// private so that the active key is always among the keys.
#[derive(Debug)]
pub struct TokenKeys {
    active: KeyId,
    keys: BTreeMap<KeyId, TokenKey>,
}

impl TokenKeys {
    pub fn new(active: KeyId, keys: BTreeMap<KeyId, TokenKey>) -> Result<TokenKeys, VaultError> {
        if keys.contains_key(&active) {
            Ok(TokenKeys { active, keys })
        } else {
            Err(VaultError::ActiveKeyMissing(active.to_string()))
        }
    }

    /// The key id new ciphertexts are written with.
    pub fn active(&self) -> &KeyId {
        &self.active
    }

    /// Every key, the active one included, by id.
    pub fn keys(&self) -> &BTreeMap<KeyId, TokenKey> {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn key(byte: u8) -> TokenKey {
        SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.fill(byte))
    }

    #[test]
    fn key_ids_are_restricted_to_a_loggable_alphabet() {
        assert!(KeyId::new("k2025-01_a.b").is_ok());
        assert_eq!(KeyId::new(""), Err(VaultError::InvalidKeyId));
        assert_eq!(KeyId::new("a".repeat(33)), Err(VaultError::InvalidKeyId));
        assert_eq!(KeyId::new("a b"), Err(VaultError::InvalidKeyId));
        assert_eq!(KeyId::new("é"), Err(VaultError::InvalidKeyId));
    }

    #[test]
    fn the_layout_is_version_id_nonce_body_tag() {
        let id = KeyId::new("k1").unwrap();
        let k = key(7);
        let vault = Vault::new(&id, [(&id, &k)]).unwrap();
        let ctx = TokenContext::access(TenantId(Uuid::new_v4()), ConnectionId(Uuid::new_v4()));
        let stored = vault.encrypt(ctx, &SecretString::from("abc"));
        assert_eq!(stored[0], FORMAT_V1);
        assert_eq!(stored[1], 2);
        assert_eq!(&stored[2..4], b"k1");
        assert_eq!(stored.len(), 4 + NONCE_LEN + 3 + TAG_LEN);
        assert_eq!(key_id_of(&stored), Ok("k1"));
    }

    #[test]
    fn a_vault_without_its_active_key_is_refused() {
        let a = KeyId::new("a").unwrap();
        let b = KeyId::new("b").unwrap();
        let k = key(1);
        let err = Vault::new(&b, [(&a, &k)]).unwrap_err();
        assert_eq!(err, VaultError::ActiveKeyMissing("b".into()));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let id = KeyId::new("k1").unwrap();
        let k = key(0xAB);
        let vault = Vault::new(&id, [(&id, &k)]).unwrap();
        let dbg = format!("{vault:?}");
        assert!(dbg.contains("k1"));
        assert!(!dbg.to_lowercase().contains("abab"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
    }
}
