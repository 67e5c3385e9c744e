//! The sync-errors API through its real router, fed API Gateway events from
//! `events/sync-errors/`.

use serde_json::json;
use testkit::http::{ApiEvent, TestApp, call};
use testkit::{Graph, new_error};

#[tokio::test]
async fn lists_errors_of_the_callers_tenant_only_with_filters_and_pages() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let ga = Graph::create(t.store(), &a).await;
    Graph::create(t.store(), &b).await;
    for _ in 0..4 {
        t.store().create_error(&new_error(&a, ga.connection.base.id)).await.unwrap();
    }
    t.store().resolve_error(a.id, ga.error.base.id, Some("done")).await.unwrap();

    // Act
    let first = call(&router, &ApiEvent::load("sync-errors/list").caller(&a).query("unresolved=true&limit=3")).await;
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_owned();
    let second = call(
        &router,
        &ApiEvent::load("sync-errors/list").caller(&a).query(&format!("unresolved=true&limit=3&cursor={cursor}")),
    )
    .await;
    let all = call(&router, &ApiEvent::load("sync-errors/list").caller(&a).query("")).await;

    // Assert
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());
    let tenants: Vec<_> = all.body["items"].as_array().unwrap().iter().map(|e| e["tenant_id"].clone()).collect();
    assert_eq!(tenants.len(), 5, "four new errors and the graph's one, none of tenant b");
    assert!(tenants.iter().all(|id| id == &json!(a.id.to_string())));
}

#[tokio::test]
async fn reads_and_resolves_an_error_once() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.error.base.id;

    // Act
    let read = call(&router, &ApiEvent::load("sync-errors/get").caller(&a).path(&format!("/sync-errors/{id}"))).await;
    let resolve = ApiEvent::load("sync-errors/resolve").caller(&a).path(&format!("/sync-errors/{id}/resolve"));
    let resolved = call(&router, &resolve).await;
    let again = call(&router, &resolve).await;

    // Assert
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["error_type"], "network");
    assert!(read.body["resolved_at"].is_null());
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body["resolution_notes"], "Reconnected the account.");
    assert!(resolved.body["resolved_at"].is_string());
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "invalid_state");
}

#[tokio::test]
async fn resolving_without_a_body_is_allowed() {
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;

    let reply = call(
        &router,
        &ApiEvent::load("sync-errors/resolve")
            .caller(&a)
            .path(&format!("/sync-errors/{}/resolve", g.error.base.id))
            .without_body(),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.body["resolution_notes"].is_null());
}

#[tokio::test]
async fn another_tenants_error_is_not_found_on_every_route() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let id = Graph::create(t.store(), &a).await.error.base.id;

    // Act
    let read = call(&router, &ApiEvent::load("sync-errors/get").caller(&b).path(&format!("/sync-errors/{id}"))).await;
    let resolve =
        call(&router, &ApiEvent::load("sync-errors/resolve").caller(&b).path(&format!("/sync-errors/{id}/resolve")))
            .await;

    // Assert
    assert_eq!((read.status, read.error_code()), (404, "not_found"));
    assert_eq!((resolve.status, resolve.error_code()), (404, "not_found"));
    assert!(t.store().get_error(a.id, id).await.unwrap().resolved_at.is_none(), "nothing written");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let resolve =
        || ApiEvent::load("sync-errors/resolve").caller(&a).path(&format!("/sync-errors/{}/resolve", g.error.base.id));

    let cases = [
        (ApiEvent::load("sync-errors/list").caller(&a).query("error_type=disk"), "error_type"),
        (ApiEvent::load("sync-errors/list").caller(&a).query("connection_id=42"), "connection_id"),
        (ApiEvent::load("sync-errors/list").caller(&a).query("limit=0"), "limit"),
        (ApiEvent::load("sync-errors/list").caller(&a).query("limit=201"), "limit"),
        (ApiEvent::load("sync-errors/list").caller(&a).query("cursor=bogus"), "cursor"),
        (ApiEvent::load("sync-errors/get").caller(&a).path("/sync-errors/not-a-uuid"), "id"),
        (resolve().json(&json!({"resolution_notes": 7})), "resolution_notes"),
        (resolve().json(&json!({"resolution_notes": "x".repeat(4001)})), "resolution_notes"),
    ];
    for (event, field) in cases {
        let reply = call(&router, &event).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    let malformed = call(&router, &resolve().raw_body("{\"resolution_notes\":", Some("application/json"))).await;
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    let unknown = call(&router, &resolve().json(&json!({"tenant_id": a.id.to_string()}))).await;
    assert_eq!(unknown.status, 400, "tenant_id is never taken from a body: {}", unknown.text);
    assert!(t.store().get_error(a.id, g.error.base.id).await.unwrap().resolved_at.is_none(), "nothing written");
}

#[tokio::test]
async fn missing_or_malformed_claims_are_401() {
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;

    let no_authorizer = call(&router, &ApiEvent::load("sync-errors/list").without_authorizer()).await;
    let no_tenant = call(&router, &ApiEvent::load("sync-errors/list").caller(&a).claim("tenant_id", None)).await;
    let bad_sub = call(&router, &ApiEvent::load("sync-errors/list").caller(&a).claim("sub", Some("alice"))).await;

    for reply in [no_authorizer, no_tenant, bad_sub] {
        assert_eq!((reply.status, reply.error_code()), (401, "unauthorized"), "{}", reply.text);
    }
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;

    // Act
    let reply = call(&router, &ApiEvent::load("sync-errors/resolve").caller(&a).path("/sync-errors/%FF/resolve")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_connection_filter_naming_another_tenants_or_an_unknown_connection_is_a_404() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let list = |tenant, id: &dyn std::fmt::Display| {
        ApiEvent::load("sync-errors/list").caller(tenant).query(&format!("connection_id={id}"))
    };

    // Act
    let theirs = call(&router, &list(&b, &g.connection.base.id)).await;
    let unknown = call(&router, &list(&b, &uuid::Uuid::new_v4())).await;
    let own = call(&router, &list(&a, &g.connection.base.id)).await;

    // Assert
    for r in [&theirs, &unknown] {
        assert_eq!(
            (r.status, r.error_code(), r.error_field()),
            (404, "not_found", Some("connection_id")),
            "{}",
            r.text
        );
    }
    assert_eq!(own.status, 200, "{}", own.text);
}

#[tokio::test]
async fn a_deleted_connection_still_filters_its_errors() {
    // Arrange: errors recorded on a connection, which is then disconnected (deleted).
    let t = TestApp::new().await;
    let router = sync_errors::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    t.store().create_error(&new_error(&a, g.connection.base.id)).await.unwrap();
    t.store().delete_connection(a.id, g.connection.base.id).await.unwrap();

    // Act
    let reply = call(
        &router,
        &ApiEvent::load("sync-errors/list").caller(&a).query(&format!("connection_id={}", g.connection.base.id)),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the graph's error and the new one");
    assert!(items.iter().all(|e| e["connection_id"] == json!(g.connection.base.id.to_string())));
}
