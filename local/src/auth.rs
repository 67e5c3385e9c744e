//! The development authorizer: stands in for API Gateway's JWT authorizer on a developer's
//! machine. It verifies HS256 tokens signed with a local secret (issuer and audience
//! `quodsi-local`) and hands the functions the token's claims the way the authorizer does,
//! as [`VerifiedClaims`]. The secret lives in `.local/`, never in the repository.

use std::collections::HashMap;

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};
use shared::api::{ApiError, VerifiedClaims};

pub const ISSUER: &str = "quodsi-local";
pub const AUDIENCE: &str = "quodsi-local";

#[derive(Clone)]
pub struct DevAuth {
    secret: std::sync::Arc<SecretSlice<u8>>,
    tenant_claim: String,
}

impl std::fmt::Debug for DevAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAuth").field("tenant_claim", &self.tenant_claim).finish_non_exhaustive()
    }
}

impl DevAuth {
    pub fn new(secret: Vec<u8>, tenant_claim: impl Into<String>) -> DevAuth {
        DevAuth { secret: std::sync::Arc::new(secret.into()), tenant_claim: tenant_claim.into() }
    }

    /// A token for `user` of `tenant`, valid for `ttl`.
    pub fn sign(&self, tenant: uuid::Uuid, user: uuid::Uuid, ttl: chrono::Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user.to_string(),
            "iat": now,
            "exp": now + ttl.num_seconds(),
        });
        claims[&self.tenant_claim] = json!(tenant.to_string());
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose_secret()),
        )
        .expect("HS256 signing of a JSON object cannot fail")
    }

    /// The claims of a valid token, as strings (API Gateway hands numbers over as strings too).
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &DecodingKey::from_secret(self.secret.expose_secret()),
            &validation,
        )
        .map_err(|e| ApiError::Unauthorized(format!("the bearer token is not valid: {e}")))?;
        Ok(data
            .claims
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect())
    }
}

/// Middleware for the routes behind the authorizer: a missing or invalid token is a 401, as
/// API Gateway would answer; a valid one becomes the request's verified claims.
pub async fn require_token(auth: DevAuth, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
        return ApiError::Unauthorized(
            "send Authorization: Bearer <token> (make one with `quodsi-local token`)".into(),
        )
        .into_response();
    };
    match auth.verify(token.trim()) {
        Ok(claims) => {
            // Anything a client sent that looks like claims is replaced, never merged.
            req.extensions_mut().insert(VerifiedClaims(claims));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}
