//! Authenticity checks of the providers' deliveries, each in constant time over the secret.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How old a Box delivery may be (Box's own verification refuses older ones).
pub const BOX_MAX_AGE: Duration = Duration::minutes(10);
/// How far ahead of this clock a Box timestamp may be: clocks differ by a little.
pub const BOX_MAX_SKEW: Duration = Duration::minutes(1);

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Whether a stored secret equals the one a notification presents (Graph `clientState`, a
/// Drive channel token). A subscription without a stored secret authenticates nothing.
pub fn same_secret(stored: Option<&SecretString>, presented: Option<&str>) -> bool {
    match (stored, presented) {
        (Some(stored), Some(presented)) => stored.expose_secret().as_bytes().ct_eq(presented.as_bytes()).into(),
        _ => false,
    }
}

/// `X-Dropbox-Signature`: the hex HMAC-SHA256 of the raw body under the app secret.
pub fn dropbox(app_secret: &SecretString, body: &[u8], signature: Option<&str>) -> bool {
    let Some(signature) = signature.and_then(|s| hex::decode(s.trim()).ok()) else { return false };
    mac(app_secret.expose_secret().as_bytes(), &[body]).verify_slice(&signature).is_ok()
}

/// The signature headers of a Box delivery.
#[derive(Debug, Clone, Copy)]
pub struct BoxDelivery<'a> {
    pub timestamp: Option<&'a str>,
    pub primary: Option<&'a str>,
    pub secondary: Option<&'a str>,
    pub version: Option<&'a str>,
    pub algorithm: Option<&'a str>,
}

/// A Box delivery is authentic when its version and algorithm are the ones Box documents
/// (`1`, `HmacSHA256`), its timestamp is at most [`BOX_MAX_AGE`] old, and the primary
/// signature verifies under the primary key or the secondary one under the secondary key
/// (either, so keys rotate one at a time): base64 HMAC-SHA256 of the body followed by the
/// timestamp's bytes. `Err` says why not.
pub fn boxcom(
    delivery: &BoxDelivery<'_>,
    body: &[u8],
    primary_key: Option<&SecretString>,
    secondary_key: Option<&SecretString>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if delivery.version != Some("1") || delivery.algorithm != Some("HmacSHA256") {
        return Err("BOX-SIGNATURE-VERSION / -ALGORITHM are not 1 / HmacSHA256".into());
    }
    let stamp = delivery.timestamp.ok_or("BOX-DELIVERY-TIMESTAMP is missing")?;
    let at = DateTime::parse_from_rfc3339(stamp).map_err(|_| "BOX-DELIVERY-TIMESTAMP is not RFC 3339")?;
    let at = at.with_timezone(&Utc);
    if now - at > BOX_MAX_AGE || at - now > BOX_MAX_SKEW {
        return Err("the delivery is older than ten minutes (or from the future)".into());
    }
    let verifies = |key: Option<&SecretString>, signature: Option<&str>| -> bool {
        let (Some(key), Some(signature)) = (key, signature) else { return false };
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
        mac(key.expose_secret().as_bytes(), &[body, stamp.as_bytes()]).verify_slice(&signature).is_ok()
    };
    if verifies(primary_key, delivery.primary) || verifies(secondary_key, delivery.secondary) {
        Ok(())
    } else {
        Err("neither BOX-SIGNATURE-PRIMARY nor -SECONDARY verifies".into())
    }
}

/// Box's signature of a delivery (base64 HMAC-SHA256 of body then timestamp): what
/// [`boxcom`] checks, for the tests and the benchmark to sign with.
pub fn box_signature(key: &str, body: &[u8], timestamp: &str) -> String {
    let digest = mac(key.as_bytes(), &[body, timestamp.as_bytes()]).finalize().into_bytes();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Dropbox's signature of a body (hex HMAC-SHA256): what [`dropbox`] checks.
pub fn hex_hmac(key: &str, body: &[u8]) -> String {
    hex::encode(mac(key.as_bytes(), &[body]).finalize().into_bytes())
}
