//! Token vault: round trips, every tamper case, and key rotation reading old / writing new.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use shared::db::{ConnectionId, TenantId};
use shared::vault::{FORMAT_V1, KEY_LEN, KeyId, TokenContext, TokenKey, TokenKind, Vault, VaultError, key_id_of};
use uuid::Uuid;

fn key(byte: u8) -> TokenKey {
    SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.fill(byte))
}

/// A vault over `keys` (id, fill byte), writing with `active`.
fn vault(active: &str, keys: &[(&str, u8)]) -> Vault {
    let keys: Vec<(KeyId, TokenKey)> = keys.iter().map(|(id, b)| (KeyId::new(*id).unwrap(), key(*b))).collect();
    Vault::new(&KeyId::new(active).unwrap(), keys.iter().map(|(id, k)| (id, k))).unwrap()
}

fn ctx(kind: TokenKind) -> TokenContext {
    TokenContext::new(TenantId(Uuid::new_v4()), ConnectionId::generate(), kind)
}

const TOKEN: &str = "EwBwA8l6BAAUbDba3x2OMJElkF7gJ4z/VbCPEz0AAUYb7Tq6lJ0Q~access-token-sample";

#[test]
fn tokens_of_every_shape_round_trip() {
    let v = vault("k1", &[("k1", 1)]);
    let c = ctx(TokenKind::Access);
    for token in
        [String::new(), "x".into(), TOKEN.into(), "ünïcödé token ✓".into(), "t".repeat(2048), "r".repeat(64 * 1024)]
    {
        let stored = v.encrypt(c, &SecretString::from(token.as_str()));
        assert!(!contains(&stored, token.as_bytes()) || token.len() < 2);
        let back = v.decrypt(c, &stored).unwrap();
        assert_eq!(back.expose_secret(), token);
    }
}

#[test]
fn each_encryption_uses_a_fresh_nonce() {
    let v = vault("k1", &[("k1", 1)]);
    let c = ctx(TokenKind::Refresh);
    let a = v.encrypt(c, &SecretString::from(TOKEN));
    let b = v.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
    // The nonce follows the 1-byte version, 1-byte id length and the id ("k1").
    assert_ne!(a[4..16], b[4..16]);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_flipped_bit_of_every_byte_fails_closed() {
    // Two keys in the vault, so an edited key id can also land on a real, wrong key.
    let v = vault("k1", &[("k1", 1), ("k2", 2)]);
    let c = ctx(TokenKind::Access);
    for token in ["", "a", TOKEN] {
        let stored = v.encrypt(c, &SecretString::from(token));
        assert_eq!(v.decrypt(c, &stored).unwrap().expose_secret(), token);
        for pos in 0..stored.len() {
            for bit in 0..8 {
                let mut bad = stored.clone();
                bad[pos] ^= 1 << bit;
                let err = v.decrypt(c, &bad).expect_err(&format!("flip of bit {bit} at byte {pos} was accepted"));
                match pos {
                    0 => assert_eq!(err, VaultError::UnknownVersion(stored[0] ^ (1 << bit))),
                    // The id length: the parse now misreads the id, the nonce or the length.
                    1 => assert!(
                        matches!(err, VaultError::Truncated | VaultError::UnknownKeyId(_) | VaultError::Authentication),
                        "byte 1: {err:?}"
                    ),
                    // The key id: now names no key held (or, had it landed on a held key,
                    // authentication would catch it: see the test below).
                    2 | 3 => assert!(
                        matches!(err, VaultError::UnknownKeyId(_) | VaultError::Authentication),
                        "byte {pos}: {err:?}"
                    ),
                    _ => assert_eq!(err, VaultError::Authentication, "byte {pos}"),
                }
            }
        }
    }
}

#[test]
fn every_truncation_and_any_extension_fails_closed() {
    let v = vault("k1", &[("k1", 1)]);
    let c = ctx(TokenKind::Access);
    let stored = v.encrypt(c, &SecretString::from(TOKEN));
    for len in 0..stored.len() {
        let err = v.decrypt(c, &stored[..len]).expect_err(&format!("truncation to {len} bytes was accepted"));
        // Below the header, nonce and tag there is nothing to authenticate; above it the tag
        // is now the wrong 16 bytes.
        let min = 2 + 2 + 12 + 16;
        if len < min {
            assert_eq!(err, VaultError::Truncated, "length {len}");
        } else {
            assert_eq!(err, VaultError::Authentication, "length {len}");
        }
    }
    for extra in [&[0u8][..], &[0xFF; 16]] {
        let mut longer = stored.clone();
        longer.extend_from_slice(extra);
        assert_eq!(v.decrypt(c, &longer).unwrap_err(), VaultError::Authentication);
    }
    assert_eq!(key_id_of(&[]).unwrap_err(), VaultError::Truncated);
}

#[test]
fn an_unknown_key_id_fails_closed() {
    let old = vault("old", &[("old", 1)]);
    let new = vault("new", &[("new", 2)]);
    let c = ctx(TokenKind::Access);
    let stored = old.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(new.decrypt(c, &stored).unwrap_err(), VaultError::UnknownKeyId("old".into()));
    // The same id over different key material is not a way around the tag.
    let impostor = vault("old", &[("old", 9)]);
    assert_eq!(impostor.decrypt(c, &stored).unwrap_err(), VaultError::Authentication);
    // A header rewritten to name another key the vault holds fails authentication: the
    // header is part of the associated data, and the other key is the wrong key anyway.
    let both = vault("k1", &[("k1", 1), ("k2", 2)]);
    let mut relabelled = both.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(&relabelled[2..4], b"k1");
    relabelled[3] = b'2';
    assert_eq!(both.decrypt(c, &relabelled).unwrap_err(), VaultError::Authentication);
    // A header id outside the key-id alphabet is refused as unknown too.
    let mut odd = stored.clone();
    odd[2] = b' ';
    assert!(matches!(old.decrypt(c, &odd).unwrap_err(), VaultError::UnknownKeyId(_)));
}

#[test]
fn a_ciphertext_moved_to_another_tenant_row_or_column_fails() {
    let v = vault("k1", &[("k1", 1)]);
    let tenant = TenantId(Uuid::new_v4());
    let conn = Uuid::new_v4();
    let access = TokenContext::access(tenant, ConnectionId::from(conn));
    let stored = v.encrypt(access, &SecretString::from(TOKEN));
    assert_eq!(v.decrypt(access, &stored).unwrap().expose_secret(), TOKEN);

    let other_tenant = TokenContext::access(TenantId(Uuid::new_v4()), ConnectionId::from(conn));
    let other_row = TokenContext::access(tenant, ConnectionId::generate());
    let other_column = TokenContext::refresh(tenant, ConnectionId::from(conn));
    // Tenant and connection swapped: the fields are positional, not a set.
    let swapped = TokenContext::access(TenantId(conn), ConnectionId::from(tenant.0));
    for wrong in [other_tenant, other_row, other_column, swapped] {
        assert_eq!(v.decrypt(wrong, &stored).unwrap_err(), VaultError::Authentication, "{wrong:?}");
    }
}

#[test]
fn an_unknown_format_version_fails_closed() {
    let v = vault("k1", &[("k1", 1)]);
    let c = ctx(TokenKind::Refresh);
    let stored = v.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(stored[0], FORMAT_V1);
    for version in [0u8, 2, 0x7F, 0xFF] {
        let mut other = stored.clone();
        other[0] = version;
        assert_eq!(v.decrypt(c, &other).unwrap_err(), VaultError::UnknownVersion(version));
        assert_eq!(key_id_of(&other).unwrap_err(), VaultError::UnknownVersion(version));
    }
}

#[test]
fn a_two_key_vault_reads_old_ciphertext_and_writes_new() {
    let before = vault("k1", &[("k1", 1)]);
    let during = vault("k2", &[("k1", 1), ("k2", 2)]);
    let after = vault("k2", &[("k2", 2)]);
    let c = ctx(TokenKind::Access);

    let old = before.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(key_id_of(&old), Ok("k1"));
    assert!(!during.is_current(&old));
    assert_eq!(during.decrypt(c, &old).unwrap().expose_secret(), TOKEN);

    let new = during.encrypt(c, &SecretString::from(TOKEN));
    assert_eq!(key_id_of(&new), Ok("k2"));
    assert!(during.is_current(&new));
    assert_eq!(during.active_key_id().as_str(), "k2");
    assert_eq!(after.decrypt(c, &new).unwrap().expose_secret(), TOKEN);
    // Once k1 is dropped, rows left under it are unreadable: what rotation is for.
    assert_eq!(after.decrypt(c, &old).unwrap_err(), VaultError::UnknownKeyId("k1".into()));
    // A vault not yet given k2 cannot read what the new one wrote.
    assert_eq!(before.decrypt(c, &new).unwrap_err(), VaultError::UnknownKeyId("k2".into()));
}

#[test]
fn errors_and_debug_output_carry_no_secret() {
    let v = vault("k1", &[("k1", 0x5A)]);
    let c = ctx(TokenKind::Access);
    let token = SecretString::from(TOKEN);
    let stored = v.encrypt(c, &token);
    assert!(!format!("{token:?}").contains(TOKEN));
    let dbg = format!("{v:?}");
    assert!(dbg.contains("k1") && !dbg.contains("90, 90"), "{dbg}");
    let mut bad = stored.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = v.decrypt(c, &bad).unwrap_err();
    assert!(!err.to_string().contains(TOKEN));
    assert!(!format!("{err:?}").contains(TOKEN));
}
