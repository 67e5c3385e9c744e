//! Who is calling. In AWS the API Gateway HTTP API JWT authorizer has verified the token and
//! put its claims in the request context; locally the development authorizer puts the same
//! claims in a [`VerifiedClaims`] extension. Either way `sub` is the user and the tenant
//! claim (named by configuration) the tenant. Nothing else — no body, no query — names the
//! tenant.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use uuid::Uuid;

use super::ApiError;
use crate::db::{TenantId, UserId};

/// The verified caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub user_id: UserId,
}

/// Claims a local authorizer has already verified (never set from anything on the wire).
#[derive(Debug, Clone, Default)]
pub struct VerifiedClaims(pub HashMap<String, String>);

/// State that knows which claim carries the tenant id.
pub trait TenantClaim {
    fn tenant_claim(&self) -> &str;
}

fn claims(parts: &Parts) -> Option<&HashMap<String, String>> {
    if let Some(VerifiedClaims(c)) = parts.extensions.get::<VerifiedClaims>() {
        return Some(c);
    }
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => Some(&ctx.authorizer.as_ref()?.jwt.as_ref()?.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

impl Caller {
    pub fn from_claims(claims: &HashMap<String, String>, tenant_claim: &str) -> Result<Caller, ApiError> {
        let get = |name: &str| -> Result<Uuid, ApiError> {
            let raw =
                claims.get(name).ok_or_else(|| ApiError::Unauthorized(format!("the token has no {name} claim")))?;
            Uuid::parse_str(raw.trim()).map_err(|_| ApiError::Unauthorized(format!("the {name} claim is not a UUID")))
        };
        Ok(Caller { tenant_id: TenantId(get(tenant_claim)?), user_id: UserId(get("sub")?) })
    }
}

impl<S: TenantClaim + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims =
            claims(parts).ok_or_else(|| ApiError::Unauthorized("the request carries no verified token".into()))?;
        let caller = Caller::from_claims(claims, state.tenant_claim())?;
        // Every later log line of the request names the tenant (see telemetry::request_span).
        tracing::Span::current().record("tenant_id", tracing::field::display(caller.tenant_id));
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_name_the_tenant_and_user() {
        let t = Uuid::new_v4();
        let u = Uuid::new_v4();
        let claims = HashMap::from([("tenant_id".to_owned(), t.to_string()), ("sub".to_owned(), u.to_string())]);
        assert_eq!(
            Caller::from_claims(&claims, "tenant_id").unwrap(),
            Caller { tenant_id: TenantId(t), user_id: UserId(u) }
        );
        assert!(matches!(Caller::from_claims(&claims, "custom:tenant"), Err(ApiError::Unauthorized(_))));
        let bad = HashMap::from([("tenant_id".to_owned(), "acme".to_owned()), ("sub".to_owned(), u.to_string())]);
        assert!(matches!(Caller::from_claims(&bad, "tenant_id"), Err(ApiError::Unauthorized(_))));
    }
}
