//! The OAuth `state` that `oauth-authorize` seals and `oauth-callback` opens: who started the
//! connection, for which provider, the PKCE verifier, where to send the browser back, and a
//! deadline. The sealer authenticates it and binds it to the provider (the purpose string);
//! the deadline is carried inside because the sealer enforces none.

use chrono::{DateTime, Duration, Utc};
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
        })
    }
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
}
