//! HTTP routes, one `router()` per resource, merged here with the sockets,
//! tracing (paths only: query strings can hold tokens) and body limits.

mod analytics;
mod auth;
mod config;
mod conversations;
mod messages;
mod openai;
mod plans;
mod profile;
mod shares;
mod ui;
mod voice;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::{error::AppError, AppState};

/// The whole application: HTTP endpoints and WebSocket upgrades.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(health))
        .merge(analytics::router())
        .merge(auth::router())
        .merge(config::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(openai::router())
        .merge(plans::router())
        .merge(profile::router())
        .merge(shares::router())
        .merge(voice::router())
        .merge(crate::ws::router())
        .merge(crate::voice::socket::router())
        .merge(ui::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// `ok`, or in cluster mode `degraded` while NATS is unreachable (still
/// 200: the node serves its sockets, and every node would be down alike).
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    match &state.cluster {
        None => Json(json!({ "status": "ok" })),
        Some(cluster) => Json(json!({
            "status": if cluster.connected() { "ok" } else { "degraded" },
            "cluster": cluster.health(),
        })),
    }
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
