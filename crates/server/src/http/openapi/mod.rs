//! The OpenAPI 3.1 document of this server, generated from the handlers'
//! `#[utoipa::path]` attributes: every module's router is a `utoipa-axum`
//! `OpenApiRouter` whose `routes!` register a handler and its documentation
//! together, so a route cannot be served without being described.
//! `GET /api/openapi.json` serves the document; `GET /api/docs` a page
//! rendered from it on the server ([`page`]), with no script or third-party
//! resource, so the UI's Content-Security-Policy holds for it too.

mod page;

use std::sync::Arc;

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Extension,
};
use serde::Serialize;
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::Operation,
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
        ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Response as ApiResponse,
        ResponseBuilder, Type,
    },
    Modify, ToSchema,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

/// The document's skeleton: what no handler says (title, tags, the error
/// shape, the security schemes). The handlers add the paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Colloquy",
        description = "A real-time AI chat server. Chat runs over WebSockets (documented here as \
            their `GET` upgrade requests) or plain HTTP; the REST endpoints manage accounts, \
            conversations, share links, plans and analytics. Send the access token from \
            `/auth/login`, `/auth/register` or `/api/auth/anonymous` as `Authorization: Bearer \
            <token>` (or `?token=`, which sockets need since browsers cannot set headers). \
            Every error is JSON: `{\"error\": {\"code\", \"message\"}}`, with a stable `code`."
    ),
    tags(
        (name = "auth", description = "Accounts, sign-in and guest sessions."),
        (name = "conversations", description = "The caller's conversations and their messages."),
        (name = "chat", description = "Chat turns over plain HTTP, for clients without a socket."),
        (name = "sockets", description = "WebSocket upgrades: JSON chat and binary voice. \
            Refusals after the upgrade arrive as close codes with a reason."),
        (name = "shares", description = "Read-only share links of conversations."),
        (name = "profile", description = "The caller's profile and activity streak."),
        (name = "plans", description = "Coaching plans and their ordered steps."),
        (name = "analytics", description = "Product analytics events and their daily counts."),
        (name = "billing", description = "Stripe Checkout for a plan, and Stripe's signed webhook."),
        (name = "usage", description = "What users spent per day and model, and their plans' daily quotas."),
        (name = "openai", description = "An OpenAI-compatible API: a Colloquy token is the API key."),
        (name = "server", description = "Client configuration, health, metrics and this document."),
        (name = "ui", description = "Pages of the browser UI. Every file of the UI (scripts, \
            styles, icons) is also served at its own name, such as `/app.js`; those are not \
            listed."),
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// The security scheme handlers name: `security(("bearer" = []))` for any
/// signed-in or guest user, `security(("bearer" = ["admin"]))` for admins.
const BEARER: &str = "bearer";
/// The same token as a `?token=` query parameter, which every endpoint
/// accepts too; [`complete`] adds it wherever `bearer` is required.
const TOKEN_QUERY: &str = "token_query";

/// Every error answer: `{"error": {"code", "message"}}` (see `AppError`).
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code` for programs, a `message` for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, such as `not_found` or `invalid_json`.
    pub code: String,
    /// Safe to show; never internal details.
    pub message: String,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token. The `admin` role means the user must be listed \
                         in the server's `admins` setting (by id or email).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            TOKEN_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The access token as a query parameter, for clients that cannot set headers.",
            ))),
        );
    }
}

/// What the handlers leave implicit, added to every operation so each one
/// states it: a unique `operationId`, `?token=` wherever a bearer token is accepted, a 401 where a
/// token is needed, the error body on every error
/// response that names none, `Retry-After` on 429 and 503, and a `default`
/// for what any request can meet (500, 503, 504 past `request_timeout_secs`).
fn complete(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    // utoipa names an operation after its handler, and handlers of several
    // modules share names (`show`, `list`); the tag makes them unique.
    if let (Some(id), Some(tag)) = (
        &operation.operation_id,
        operation.tags.as_ref().and_then(|t| t.first()),
    ) {
        operation.operation_id = Some(format!("{tag}_{id}"));
    }
    if let Some(requirements) = &mut operation.security {
        for roles in [vec![], vec!["admin"]] {
            if requirements.contains(&SecurityRequirement::new(BEARER, roles.clone())) {
                requirements.push(SecurityRequirement::new(TOKEN_QUERY, roles));
            }
        }
    }
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut operation.responses.responses;
    if secured {
        responses
            .entry("401".into())
            .or_insert_with(|| error_response("No valid access token (`unauthorized`).").into());
    }
    responses.entry("default".into()).or_insert_with(|| {
        error_response(
            "Any other error: 500 `internal`, 503 `unavailable` or `overloaded` (retry after \
             `Retry-After`), 504 `request_timeout`.",
        )
        .into()
    });
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let is_error = status == "default" || status.starts_with(['4', '5']);
        if is_error && response.content.is_empty() {
            response
                .content
                .insert("application/json".into(), error_content());
        }
        if matches!(status.as_str(), "429" | "503" | "default") {
            response
                .headers
                .entry("Retry-After".into())
                .or_insert_with(|| {
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds to wait before retrying (429 and 503)."))
                        .build()
                });
        }
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .build()
}

fn error_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .build()
}

/// The document and its page, rendered once when the router is built.
#[derive(Clone)]
pub struct ApiDocs(Arc<Rendered>);

struct Rendered {
    json: String,
    html: String,
}

impl ApiDocs {
    /// Finish `api` (see [`complete`]) and render it.
    pub fn new(mut api: OpenApi) -> Self {
        complete(&mut api);
        // Serializing plain maps and strings cannot fail; an empty document
        // would only make the docs test fail loudly.
        let json = api.to_pretty_json().unwrap_or_default();
        let value = serde_json::from_str(&json).unwrap_or_default();
        let html = page::render(&value);
        ApiDocs(Arc::new(Rendered { json, html }))
    }
}

/// The two routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
}

/// The OpenAPI 3.1 document of this server.
///
/// Generated from the code; it lists every HTTP endpoint and socket upgrade.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object)),
)]
async fn openapi_json(Extension(docs): Extension<ApiDocs>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        docs.0.json.clone(),
    )
        .into_response()
}

/// A readable page of this document.
///
/// Endpoints grouped by tag with their parameters, bodies and responses,
/// then the schemas. Plain HTML and the UI's stylesheet: no scripts.
#[utoipa::path(
    get, path = "/api/docs", tag = "server",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn docs_page(Extension(docs): Extension<ApiDocs>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        docs.0.html.clone(),
    )
        .into_response();
    super::ui::page_headers(response.headers_mut());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
