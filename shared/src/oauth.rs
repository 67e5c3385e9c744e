//! The OAuth `state` that `oauth-authorize` seals and `oauth-callback` opens: who started the
//! connection, for which provider, the PKCE verifier, where to send the browser back, and a
//! deadline. The sealer authenticates it and binds it to the provider (the purpose string);
//! the deadline is carried inside because the sealer enforces none.
//!
//! The state is also bound to the browser that started the flow (login CSRF, RFC 6749
//! section 10.12): `oauth-authorize` sets a random nonce in an HttpOnly cookie
//! ([`BrowserBinding`]) and seals the nonce's SHA-256 into the state; `oauth-callback` opens
//! the state only with a cookie whose nonce hashes to it. Without that, a victim who consents
//! on an attacker's authorization URL would connect the victim's account into the attacker's
//! tenant.

use chrono::{DateTime, Duration, Utc};
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{ProviderType, TenantId, UserId};
use crate::providers::Pkce;
use crate::vault::StateSealer;

/// How long a user has to finish consent at the provider.
pub const STATE_LIFETIME: Duration = Duration::minutes(10);

/// The sealer purpose of a provider's state: a state made for one provider does not open on
/// another provider's callback.
pub fn state_purpose(provider: ProviderType) -> String {
    format!("oauth-state/{provider}")
}

/// One login in flight. Debug output leaves the verifier out.
pub struct OAuthState {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub provider: ProviderType,
    pub pkce: Pkce,
    pub return_to: String,
    pub display_name: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The SHA-256 (base64url) of the browser's binding nonce; see [`BrowserBinding`].
    pub browser_hash: String,
}

impl std::fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthState")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("provider", &self.provider)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a state was refused. Neither variant says more: the state came from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the OAuth state is not valid for this provider (altered, or made for another provider)")]
    Invalid,
    #[error("the OAuth state has expired")]
    Expired,
}

/// The sealed form: short keys keep the URL short.
#[derive(Serialize, Deserialize)]
struct Wire {
    t: Uuid,
    u: Uuid,
    p: ProviderType,
    v: String,
    r: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    /// Unix seconds.
    e: i64,
    /// The browser binding's hash. Required: a state without one is not accepted.
    b: String,
}

impl OAuthState {
    /// The URL-safe sealed state.
    pub fn seal(&self, sealer: &StateSealer) -> String {
        let mut wire = Wire {
            t: self.tenant_id.0,
            u: self.user_id.0,
            p: self.provider,
            v: self.pkce.verifier().expose_secret().to_owned(),
            r: self.return_to.clone(),
            d: self.display_name.clone(),
            e: self.expires_at.timestamp(),
            b: self.browser_hash.clone(),
        };
        let mut blob = serde_json::to_vec(&wire).expect("the state serialises");
        wire.v.zeroize();
        let sealed = sealer.seal(&state_purpose(self.provider), &blob);
        blob.zeroize();
        sealed
    }

    /// Opens a state from the callback of `provider`, refusing one that is altered, made for
    /// another provider or past its deadline at `now`.
    pub fn open(
        sealer: &StateSealer,
        provider: ProviderType,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> Result<OAuthState, StateError> {
        let blob = sealer.open(&state_purpose(provider), sealed).map_err(|_| StateError::Invalid)?;
        let wire: Wire = serde_json::from_slice(blob.expose_secret()).map_err(|_| StateError::Invalid)?;
        // The purpose already binds the provider; a mismatch here means a bug, not an attack.
        if wire.p != provider {
            return Err(StateError::Invalid);
        }
        let expires_at = DateTime::from_timestamp(wire.e, 0).ok_or(StateError::Invalid)?;
        if expires_at <= now {
            return Err(StateError::Expired);
        }
        Ok(OAuthState {
            tenant_id: TenantId(wire.t),
            user_id: UserId(wire.u),
            provider: wire.p,
            pkce: Pkce::from_verifier(SecretString::from(wire.v)),
            return_to: wire.r,
            display_name: wire.d,
            expires_at,
            browser_hash: wire.b,
        })
    }

    /// Whether the request's `Cookie` headers carry the nonce this state was bound to.
    pub fn is_bound_to(&self, cookie_headers: &[&str]) -> bool {
        let name = BrowserBinding::cookie_name(self.provider);
        cookie_headers
            .iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .any(|(_, nonce)| !nonce.is_empty() && constant_time_eq(&binding_hash(nonce), &self.browser_hash))
    }
}

/// The browser side of a login in flight: a random nonce (32 bytes, base64url) sent to the
/// browser as an HttpOnly cookie, whose SHA-256 goes into the sealed state.
///
/// The cookie is `__Host-` prefixed (Secure, Path=/, no Domain: no sibling host can plant
/// one), HttpOnly (no script reads it) and SameSite=Lax: it travels on the top-level GET
/// from the provider back to the callback, and on no cross-site subrequest. One per
/// provider, so connecting two providers at once in two tabs does not collide.
pub struct BrowserBinding {
    nonce: SecretString,
    hash: String,
}

impl std::fmt::Debug for BrowserBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserBinding").field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl BrowserBinding {
    pub fn generate() -> BrowserBinding {
        // A PKCE verifier is exactly a fresh 32-byte random value in base64url, and its S256
        // challenge exactly base64url(SHA-256(value)).
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        BrowserBinding {
            nonce: crate::config::into_secret(verifier.into_secret()),
            hash: challenge.as_str().to_owned(),
        }
    }

    /// What goes into [`OAuthState::browser_hash`].
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The cookie's name for `provider`.
    pub fn cookie_name(provider: ProviderType) -> String {
        format!("__Host-quodsi-oauth-{provider}")
    }

    /// The `Set-Cookie` value of `oauth-authorize`; it lives as long as the state.
    pub fn set_cookie(&self, provider: ProviderType) -> String {
        format!(
            "{}={}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Lax",
            BrowserBinding::cookie_name(provider),
            self.nonce.expose_secret(),
            STATE_LIFETIME.num_seconds()
        )
    }

    /// The `Set-Cookie` value of `oauth-callback` once the state is used: the cookie is
    /// removed.
    pub fn clear_cookie(provider: ProviderType) -> String {
        format!("{}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax", BrowserBinding::cookie_name(provider))
    }
}

fn binding_hash(nonce: &str) -> String {
    PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(nonce.to_owned())).as_str().to_owned()
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    fn sealer() -> StateSealer {
        StateSealer::new(&SecretBox::init_with_mut(|k: &mut [u8; 32]| k.fill(3)))
    }

    fn state(expires_at: DateTime<Utc>) -> OAuthState {
        OAuthState {
            tenant_id: TenantId(Uuid::new_v4()),
            user_id: UserId(Uuid::new_v4()),
            provider: ProviderType::Dropbox,
            pkce: Pkce::generate(),
            return_to: "https://app.example.test/settings".into(),
            display_name: Some("Ünïcode name".into()),
            expires_at,
            browser_hash: BrowserBinding::generate().hash().to_owned(),
        }
    }

    #[test]
    fn round_trips_and_is_opaque() {
        let now = Utc::now();
        let s = state(now + STATE_LIFETIME);
        let sealed = s.seal(&sealer());
        assert!(!sealed.contains("app.example"), "{sealed}");
        let opened = OAuthState::open(&sealer(), ProviderType::Dropbox, &sealed, now).unwrap();
        assert_eq!(opened.tenant_id, s.tenant_id);
        assert_eq!(opened.user_id, s.user_id);
        assert_eq!(opened.pkce.verifier().expose_secret(), s.pkce.verifier().expose_secret());
        assert_eq!(opened.return_to, s.return_to);
        assert_eq!(opened.display_name, s.display_name);
        assert_eq!(opened.expires_at.timestamp(), s.expires_at.timestamp());
        assert_eq!(opened.browser_hash, s.browser_hash);
        assert!(!format!("{opened:?}").contains(s.pkce.verifier().expose_secret()));
    }

    #[test]
    fn expired_and_other_provider_states_are_refused() {
        let now = Utc::now();
        let sealed = state(now + STATE_LIFETIME).seal(&sealer());
        let later = now + STATE_LIFETIME + Duration::seconds(1);
        assert_eq!(
            OAuthState::open(&sealer(), ProviderType::Dropbox, &sealed, later).unwrap_err(),
            StateError::Expired
        );
        assert_eq!(OAuthState::open(&sealer(), ProviderType::Box, &sealed, now).unwrap_err(), StateError::Invalid);
    }

    /// The `Cookie` header value a browser sends back for a `Set-Cookie` value.
    fn cookie_of(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn a_state_opens_as_bound_only_with_its_own_browser_cookie() {
        // Arrange
        let now = Utc::now();
        let binding = BrowserBinding::generate();
        let other = BrowserBinding::generate();
        let mut s = state(now + STATE_LIFETIME);
        s.browser_hash = binding.hash().to_owned();
        let sealed = s.seal(&sealer());
        let provider = ProviderType::Dropbox;
        let own = cookie_of(&binding.set_cookie(provider));
        let foreign = cookie_of(&other.set_cookie(provider));
        let other_provider = cookie_of(&binding.set_cookie(ProviderType::Box));
        let empty = format!("{}=", BrowserBinding::cookie_name(provider));

        // Act
        let opened = OAuthState::open(&sealer(), provider, &sealed, now).unwrap();

        // Assert
        assert!(opened.is_bound_to(&[own.as_str()]));
        assert!(opened.is_bound_to(&[&format!("a=1; {own}; b=2")]), "among other cookies");
        assert!(opened.is_bound_to(&["a=1", own.as_str()]), "in a second Cookie header");
        assert!(!opened.is_bound_to(&[]), "no cookie");
        assert!(!opened.is_bound_to(&[foreign.as_str()]), "another browser's nonce");
        assert!(!opened.is_bound_to(&[other_provider.as_str()]), "the cookie of another provider");
        assert!(!opened.is_bound_to(&[empty.as_str()]), "an empty cookie");
        assert!(!opened.is_bound_to(&[&format!("x{own}")]), "another cookie's name");
    }

    #[test]
    fn the_cookie_is_host_only_http_only_secure_and_lax() {
        let binding = BrowserBinding::generate();

        let set = binding.set_cookie(ProviderType::GDrive);
        let clear = BrowserBinding::clear_cookie(ProviderType::GDrive);

        assert!(set.starts_with("__Host-quodsi-oauth-gdrive="), "{set}");
        for attribute in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax", "; Max-Age=600"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(!set.contains("Domain"), "{set}");
        assert!(!set.contains(binding.hash()), "the cookie carries the nonce, not its hash");
        assert!(!format!("{binding:?}").contains(&cookie_of(&set)["__Host-quodsi-oauth-gdrive=".len()..]));
        assert_eq!(clear, "__Host-quodsi-oauth-gdrive=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax");
    }
}
