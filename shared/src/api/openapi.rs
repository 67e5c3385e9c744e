//! What every function's OpenAPI document shares: the bearer JWT scheme the API Gateway
//! authorizer checks. Operations name it with `security(("bearer_jwt" = []))` one by one
//! rather than through a document-wide default, so a public route (the link redirect) merged
//! into the same document is not described as needing a token.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The name operations use for the security scheme.
pub const BEARER_JWT: &str = "bearer_jwt";

/// Adds the bearer JWT scheme to a document (`#[openapi(modifiers(&BearerJwt))]`).
pub struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token of the Quodsi identity provider, verified by the API Gateway JWT authorizer. \
                         `sub` is the user; the tenant claim (`tenant_id` unless configured otherwise) is the \
                         only source of the tenant.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The operations of a document, mutable, with their path and method.
fn operations_mut(doc: &mut OpenApi) -> Vec<(String, &'static str, &mut utoipa::openapi::path::Operation)> {
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let methods = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("patch", &mut item.patch),
            ("put", &mut item.put),
            ("delete", &mut item.delete),
        ];
        for (method, op) in methods {
            if let Some(op) = op.as_mut() {
                out.push((path.clone(), method, op));
            }
        }
    }
    out
}

/// What the merged document gets beyond each function's part: the links between operations
/// ([`link_operations`]) and the 415 every JSON body can answer ([`document_media_type`]).
pub fn complete(doc: &mut OpenApi) {
    link_operations(doc);
    document_media_type(doc);
}

/// Every operation that takes a JSON body answers 415 to a body of another type, or to a
/// body sent without `Content-Type: application/json` (`shared::api::extract::JsonBody`, the
/// one body extractor).
pub fn document_media_type(doc: &mut OpenApi) {
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::{ContentBuilder, Ref};

    for (_, _, op) in operations_mut(doc) {
        if op.request_body.is_none() || op.responses.responses.contains_key("415") {
            continue;
        }
        let response = ResponseBuilder::new()
            .description("The body is not JSON: send it with `Content-Type: application/json`")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
            )
            .build();
        op.responses.responses.insert("415".to_owned(), response.into());
    }
}

/// Adds OpenAPI links to the merged document, so a client (and schemathesis' stateful phase)
/// can follow the id one operation answers into the operations that take it: a collection's
/// `POST` (201, `id`) and `GET` (200, `items[0].id`) feed every operation under
/// `{collection}/{id}` and every operation with the matching `<resource>_id` query parameter
/// (`POST /folders` → `GET /sync-jobs?folder_id=`). Done on the merged document because links
/// cross functions.
pub fn link_operations(doc: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::path::ParameterIn;

    let collections: Vec<String> = doc
        .paths
        .paths
        .keys()
        .filter(|p| !p.contains('{') && doc.paths.paths.contains_key(&format!("{p}/{{id}}")))
        .cloned()
        .collect();
    // (operation id, parameter key) of every operation that takes a resource's id.
    let mut consumers: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (path, _, op) in operations_mut(doc) {
        let Some(id) = op.operation_id.clone() else { continue };
        let mut takes = Vec::new();
        for collection in &collections {
            if path.starts_with(&format!("{collection}/{{id}}")) {
                takes.push((collection.clone(), "path.id".to_owned()));
            }
            let param = resource_param(collection);
            let has_query =
                op.parameters.iter().flatten().any(
                    |p| matches!(p, RefOr::T(p) if p.name == param && matches!(p.parameter_in, ParameterIn::Query)),
                );
            if has_query {
                takes.push((collection.clone(), format!("query.{param}")));
            }
        }
        consumers.push((id, takes));
    }
    for (path, method, op) in operations_mut(doc) {
        let (status, pointer) = match method {
            "post" => ("201", "$response.body#/id"),
            "get" => ("200", "$response.body#/items/0/id"),
            _ => continue,
        };
        if !collections.contains(&path) {
            continue;
        }
        let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) else { continue };
        for (target, takes) in &consumers {
            for (_, key) in takes.iter().filter(|(collection, _)| *collection == path) {
                let link = LinkBuilder::new()
                    .operation_id(target)
                    .parameter(key, pointer)
                    .description(format!("The id this answer names, as `{key}` of {target}."))
                    .build();
                response.links.insert(target.clone(), link.into());
            }
        }
    }
}

/// `/sync-jobs` → `sync_job_id`: the query parameter that filters by one of its rows.
fn resource_param(collection: &str) -> String {
    let last = collection.rsplit('/').next().unwrap_or_default();
    format!("{}_id", last.strip_suffix('s').unwrap_or(last).replace('-', "_"))
}

/// Marks every branch of the named `oneOf` component as closed (`additionalProperties:
/// false`). A request described by a serde-tagged enum (one shape per `job_type`, say) is
/// parsed by a struct with `deny_unknown_fields`, but utoipa does not carry that rule into an
/// enum's variants: `#[openapi(modifiers(&ClosedVariants("SyncJobCreateRequest")))]`.
pub struct ClosedVariants(pub &'static str);

impl Modify for ClosedVariants {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};

        let schema = openapi.components.as_mut().and_then(|c| c.schemas.get_mut(self.0));
        let Some(RefOr::T(Schema::OneOf(one_of))) = schema else {
            panic!("ClosedVariants: {} is not a oneOf component of this document", self.0);
        };
        for item in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = item {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}
