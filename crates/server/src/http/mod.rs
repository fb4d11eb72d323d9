//! HTTP routes, one `router()` per resource, merged here with the sockets,
//! tracing (paths only: query strings can hold tokens) and body limits.
//! Each `router()` is an `OpenApiRouter`, so merging them also assembles
//! the OpenAPI document that [`openapi`] serves.

mod analytics;
mod auth;
mod billing;
mod branches;
mod completion_meter;
mod config;
mod conversations;
mod days;
mod messages;
mod openai;
mod openapi;
mod plans;
mod profile;
mod shares;
mod summaries;
mod ui;
mod usage;
mod voice;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Extension, Json, Router,
};
use serde::Serialize;
use serde_json::Value;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::AppError, AppState};

/// The whole application: HTTP endpoints and WebSocket upgrades.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.config.max_body_bytes;
    let (router, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .merge(analytics::router())
        .merge(auth::router())
        .merge(billing::router())
        .merge(branches::router())
        .merge(config::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(openai::router())
        .merge(openapi::router())
        .merge(plans::router())
        .merge(profile::router())
        .merge(shares::router())
        .merge(summaries::router())
        .merge(usage::router())
        .merge(voice::router())
        .merge(crate::ws::router())
        .merge(crate::voice::socket::router())
        .merge(ui::router())
        .split_for_parts();
    router
        .layer(Extension(openapi::ApiDocs::new(api)))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// What `GET /healthz` answers.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`, or `degraded` while a cluster node cannot reach NATS.
    status: &'static str,
    /// In cluster mode: this node's name, `nats` (`connected` or
    /// `disconnected`) and `leases_held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Value>,
}

/// Liveness of this node.
///
/// `ok`, or in cluster mode `degraded` while NATS is unreachable (still
/// 200: the node serves its sockets, and every node would be down alike).
#[utoipa::path(
    get, path = "/healthz", tag = "server",
    responses((status = 200, description = "The node is serving.", body = Health)),
)]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(match &state.cluster {
        None => Health {
            status: "ok",
            cluster: None,
        },
        Some(cluster) => Health {
            status: if cluster.connected() {
                "ok"
            } else {
                "degraded"
            },
            cluster: Some(cluster.health()),
        },
    })
}

async fn not_found() -> AppError {
    AppError::NotFound("route")
}

/// Answer 504 when a handler takes longer than `request_timeout_secs`, so
/// no HTTP client waits forever. Only the time to the response counts: a
/// streamed body (SSE) and an upgraded socket live on past it.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Provider {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "request_timeout",
            message: "the server took too long to answer; please retry".into(),
        }
        .into_response(),
    }
}
