//! The public link redirect through its real router, fed API Gateway events from
//! `events/link-redirect/` (which carry no authorizer, as the route has none).

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use testkit::http::{ApiEvent, TestApp, call};
use testkit::{Graph, new_file_link};

fn visit(id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load("link-redirect/get").path(&format!("/links/{id}"))
}

#[tokio::test]
async fn an_active_link_redirects_and_counts_the_visit() {
    // Arrange
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;

    // Act
    let reply = call(&router, &visit(g.link.base.id)).await;

    // Assert
    assert_eq!(reply.status, 302, "{}", reply.text);
    assert_eq!(reply.header("location"), Some(g.link.share_url.as_str()));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let stored = t.store().get_link(a.id, g.link.base.id).await.unwrap();
    assert_eq!(stored.access_count, 1);
    assert!(stored.last_accessed_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_visits_are_all_counted() {
    // Arrange
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let event = visit(g.link.base.id);

    // Act
    let replies = join_all((0..50).map(|_| {
        let (router, event) = (router.clone(), event.clone());
        tokio::spawn(async move { call(&router, &event).await.status })
    }))
    .await;

    // Assert
    assert!(replies.into_iter().all(|r| r.unwrap() == 302));
    assert_eq!(t.store().get_link(a.id, g.link.base.id).await.unwrap().access_count, 50);
}

#[tokio::test]
async fn a_turned_off_or_expired_link_is_gone_and_not_counted() {
    // Arrange
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    t.store().deactivate_link(a.id, g.link.base.id).await.unwrap();
    let mut past = new_file_link(&a, g.file.base.id);
    past.expires_at = Some(Utc::now() - Duration::minutes(1));
    let expired = t.store().create_link(&past).await.unwrap();

    // Act
    let off = call(&router, &visit(g.link.base.id)).await;
    let late = call(&router, &visit(expired.base.id)).await;

    // Assert
    for reply in [&off, &late] {
        assert_eq!((reply.status, reply.error_code()), (410, "gone"), "{}", reply.text);
        assert!(reply.header("location").is_none());
    }
    assert_eq!(t.store().get_link(a.id, g.link.base.id).await.unwrap().access_count, 0);
    assert_eq!(t.store().get_link(a.id, expired.base.id).await.unwrap().access_count, 0);
}

#[tokio::test]
async fn unknown_deleted_and_malformed_ids_redirect_nowhere() {
    // Arrange
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    t.store().delete_link(a.id, g.link.base.id).await.unwrap();

    // Act
    let unknown = call(&router, &visit(uuid::Uuid::new_v4())).await;
    let deleted = call(&router, &visit(g.link.base.id)).await;
    let malformed = call(&router, &visit("not-a-uuid")).await;

    // Assert
    assert_eq!((unknown.status, unknown.error_code()), (404, "not_found"));
    assert_eq!((deleted.status, deleted.error_code()), (404, "not_found"));
    assert_eq!((malformed.status, malformed.error_field()), (400, Some("id")));
}

#[tokio::test]
async fn any_tenants_link_redirects_without_claims_even_when_claims_are_present() {
    // Arrange: the route is public, so claims, if any reach it, change nothing.
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;

    // Act
    let reply =
        call(&router, &ApiEvent::load("connections/get").caller(&b).path(&format!("/links/{}", g.link.base.id))).await;

    // Assert
    assert_eq!(reply.status, 302, "{}", reply.text);
    assert_eq!(t.store().get_link(a.id, g.link.base.id).await.unwrap().access_count, 1);
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let router = link_redirect::router(t.app.clone());

    // Act
    let reply = call(&router, &visit("%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}
