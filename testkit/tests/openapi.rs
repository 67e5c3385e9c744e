//! The API's OpenAPI 3.1 document, `openapi.json` at the repository root, is generated from the
//! functions' code (utoipa annotations on handlers and models). This test regenerates it and
//! fails when the committed file differs, so the document cannot drift from the code. It
//! writes nothing unless asked:
//!
//! ```sh
//! QUODSI_WRITE_OPENAPI=1 cargo test -p testkit --test openapi
//! ```

use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, OpenApiVersion};

/// Every HTTP function's part of the document. A new function adds its `openapi()` here.
fn function_documents() -> Vec<(&'static str, OpenApi)> {
    vec![
        ("folders", folders::openapi()),
        ("sync-jobs", sync_jobs::openapi()),
        ("files", files::openapi()),
        ("sync-errors", sync_errors::openapi()),
        ("connections", connections::openapi()),
        ("browse", browse::openapi()),
        ("shared-links", shared_links::openapi()),
        ("link-redirect", link_redirect::openapi()),
        ("oauth-authorize", oauth_authorize::openapi()),
        ("oauth-callback", oauth_callback::openapi()),
    ]
}

fn generate() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .openapi(OpenApiVersion::Version31)
        .info(
            InfoBuilder::new()
                .title("Quodsi Cloud Connections API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of the Quodsi cloud-connection backend: one Lambda function per resource \
                     behind an API Gateway HTTP API with a JWT authorizer. Every error is \
                     {\"error\": {\"code\", \"message\", \"field\"}} (ErrorEnvelope).",
                ))
                .build(),
        )
        .build();
    for (_, part) in function_documents() {
        doc.merge(part);
    }
    shared::api::openapi::complete(&mut doc);
    doc
}

fn rendered(doc: &OpenApi) -> String {
    let mut text = doc.to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}

#[test]
fn the_committed_openapi_json_is_the_generated_one() {
    let path = testkit::http::repo_root().join("openapi.json");
    let generated = rendered(&generate());
    if std::env::var_os("QUODSI_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| committed.lines().count().min(generated.lines().count()) + 1, |i| i + 1);
        panic!(
            "{} is not the document the code generates (first difference at line {line}).\n\
             Regenerate it with:\n\n    QUODSI_WRITE_OPENAPI=1 cargo test -p testkit --test openapi\n\n\
             and commit the result.",
            path.display()
        );
    }
}

#[test]
fn every_function_document_stands_on_its_own() {
    for (name, doc) in function_documents() {
        let components = doc.components.as_ref().unwrap_or_else(|| panic!("{name}: no components"));
        assert!(components.security_schemes.contains_key("bearer_jwt"), "{name}: no bearer_jwt scheme");
        assert!(components.schemas.contains_key("ErrorEnvelope"), "{name}: no error envelope schema");
        assert!(!doc.paths.paths.is_empty(), "{name}: no paths");
    }
}

/// `merge` keeps the first schema of a name and silently drops the others, so two functions
/// naming different schemas alike would lose one from the document.
#[test]
fn schemas_of_one_name_are_one_schema() {
    let mut seen: std::collections::BTreeMap<String, (&str, serde_json::Value)> = Default::default();
    for (name, doc) in function_documents() {
        for (schema, body) in doc.components.map(|c| c.schemas).unwrap_or_default() {
            let body = serde_json::to_value(body).unwrap();
            match seen.get(&schema) {
                Some((first, earlier)) => {
                    assert_eq!(earlier, &body, "schema {schema} differs between {first} and {name}; rename one")
                }
                None => {
                    seen.insert(schema, (name, body));
                }
            }
        }
    }
}

/// Routes API Gateway serves without the JWT authorizer (template.yaml): they name no security
/// and cannot answer 401.
const PUBLIC_PATHS: &[&str] = &["/links/{id}", "/oauth/callback/{provider}"];

#[test]
fn every_operation_needs_a_token_and_documents_its_errors() {
    let doc = serde_json::to_value(generate()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let error_ref = "#/components/schemas/ErrorEnvelope";
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
            assert!(operation_ids.insert(id.to_owned()), "{at}: operationId {id} is used twice");
            let public = PUBLIC_PATHS.contains(&path.as_str());
            if public {
                assert!(op.get("security").is_none(), "{at}: a public route names no security");
            } else {
                assert_eq!(op["security"], serde_json::json!([{"bearer_jwt": []}]), "{at}");
            }
            let responses = op["responses"].as_object().unwrap();
            for &code in if public { &["400"][..] } else { &["400", "401"][..] } {
                let schema = &responses.get(code).unwrap_or_else(|| panic!("{at}: no {code}"))["content"]["application/json"]
                    ["schema"]["$ref"];
                assert_eq!(schema, error_ref, "{at} {code}");
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{at}: an id route answers 404");
            }
        }
    }
}

/// Stateful clients (schemathesis' stateful phase among them) walk create → read → update →
/// delete along the document's links.
#[test]
fn an_id_a_collection_answers_links_to_the_operations_that_take_it() {
    // Arrange
    let doc = serde_json::to_value(generate()).unwrap();
    let links =
        |path: &str, method: &str, status: &str| doc["paths"][path][method]["responses"][status]["links"].clone();

    // Act
    let created_folder = links("/folders", "post", "201");
    let listed_connections = links("/connections", "get", "200");
    let created_job = links("/sync-jobs", "post", "201");

    // Assert
    for target in ["get_folder", "update_folder", "delete_folder"] {
        assert_eq!(created_folder[target]["parameters"]["path.id"], "$response.body#/id", "{target}");
    }
    for target in ["list_files", "list_sync_jobs", "list_shared_links"] {
        assert_eq!(created_folder[target]["parameters"]["query.folder_id"], "$response.body#/id", "{target}");
    }
    for target in ["get_connection", "update_connection", "delete_connection"] {
        assert_eq!(listed_connections[target]["parameters"]["path.id"], "$response.body#/items/0/id", "{target}");
    }
    assert_eq!(listed_connections["list_folders"]["parameters"]["query.connection_id"], "$response.body#/items/0/id");
    assert_eq!(created_job["cancel_sync_job"]["parameters"]["path.id"], "$response.body#/id");
}
