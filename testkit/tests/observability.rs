//! Every log line of a request carries the function and the caller's tenant, in the JSON
//! format the functions write to CloudWatch.

use testkit::http::{ApiEvent, TestApp, call};

#[tokio::test(flavor = "current_thread")]
async fn request_logs_are_json_with_function_and_tenant() {
    // Arrange
    let t = TestApp::new().await;
    let tenant = t.tenant().await;
    let router = sync_errors::router(t.app.clone());
    let capture = testkit::logs::Captured::default();
    let _guard = tracing::subscriber::set_default(shared::telemetry::subscriber(capture.clone()));
    let unknown = uuid::Uuid::new_v4();

    // Act: a request that logs (a rejected read of an unknown id).
    let reply =
        call(&router, &ApiEvent::load("sync-errors/get").caller(&tenant).path(&format!("/sync-errors/{unknown}")))
            .await;

    // Assert
    assert_eq!(reply.status, 404);
    let text = capture.text();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let rejected = lines.iter().find(|l| l["message"] == "request rejected").expect("the rejection is logged");
    assert_eq!(rejected["level"], "INFO");
    assert_eq!(rejected["span"]["name"], "request");
    assert_eq!(rejected["span"]["tenant_id"], tenant.id.to_string());
    assert_eq!(rejected["span"]["path"], format!("/sync-errors/{unknown}"));
    assert!(rejected["span"]["function"].as_str().is_some_and(|f| !f.is_empty()));
}
