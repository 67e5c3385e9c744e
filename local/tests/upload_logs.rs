//! The local upload route's token is a credential: the request that carries it is never
//! logged with its path. Alone in its binary, because the log capture is the thread's default
//! subscriber and other tests' threads would share the callsites.

use tower::ServiceExt as _;

#[tokio::test]
async fn an_upload_token_in_a_path_is_never_logged() {
    // Arrange: the local router, a guarded request and a token-bearing one.
    let (logs, _guard) = testkit::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let (app, auth) = quodsi_local::open(dir.path()).await.expect("the local run opens");
    let router = quodsi_local::router(app, auth);
    let token = "QdsiSealedUploadToken-0123456789abcdefghijklmnopqrstuvwxyz";
    let request = |method: &str, path: String| {
        axum::http::Request::builder().method(method).uri(path).body(axum::body::Body::from("bytes")).unwrap()
    };

    // Act
    let listed = router.clone().oneshot(request("GET", "/sync-errors".into())).await.unwrap();
    let put = router.oneshot(request("PUT", format!("/local-uploads/{token}"))).await.unwrap();

    // Assert
    assert_eq!((listed.status().as_u16(), put.status().as_u16()), (401, 403), "no token / a token that does not open");
    let logged = logs.text();
    assert!(logged.contains("/sync-errors"), "requests are logged with their paths: {logged}");
    assert!(!logged.contains(token), "the upload token is a credential and is never logged");
}
