//! The local run: every HTTP function's router behind one listener, with the same routes as
//! `template.yaml` (a test holds the two together), the development authorizer in front of
//! the routes API Gateway protects, and the timed functions on their schedules.

pub mod auth;
pub mod setup;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{MethodFilter, on};
use shared::app::App;
use tower::ServiceExt as _;

pub use auth::DevAuth;

/// Who answers a route, and whether API Gateway's JWT authorizer guards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub function: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub public: bool,
}

const fn private(function: &'static str, method: &'static str, path: &'static str) -> Route {
    Route { function, method, path, public: false }
}

const fn public(function: &'static str, method: &'static str, path: &'static str) -> Route {
    Route { function, method, path, public: true }
}

/// The HTTP API of `template.yaml`, route by route.
pub const ROUTES: &[Route] = &[
    private("sync-errors", "GET", "/sync-errors"),
    private("sync-errors", "GET", "/sync-errors/{id}"),
    private("sync-errors", "POST", "/sync-errors/{id}/resolve"),
];

/// The router of one function, by its name.
fn function_router(name: &str, app: &Arc<App>) -> Router {
    match name {
        "sync-errors" => sync_errors::router(app.clone()),
        other => unreachable!("ROUTES names a function the local run does not know: {other}"),
    }
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PATCH" => MethodFilter::PATCH,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("ROUTES uses a method the local run does not map: {other}"),
    }
}

/// Every route of [`ROUTES`], each handed whole (path and all) to its function's router, as
/// API Gateway hands the event to the function.
pub fn router(app: Arc<App>, auth: DevAuth) -> Router {
    let mut guarded = Router::new();
    let mut open = Router::new();
    for route in ROUTES {
        let target = function_router(route.function, &app);
        let handler = on(method_filter(route.method), move |req: Request| {
            let target = target.clone();
            async move { target.oneshot(req).await.unwrap_or_else(|never| match never {}) }
        });
        if route.public {
            open = open.route(route.path, handler);
        } else {
            guarded = guarded.route(route.path, handler);
        }
    }
    let guarded =
        guarded.layer(axum::middleware::from_fn(move |req, next| auth::require_token(auth.clone(), req, next)));
    open.merge(guarded).fallback(shared::api::no_route)
}
