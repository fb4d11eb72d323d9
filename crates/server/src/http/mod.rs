//! HTTP routes, one `router()` per resource, merged here with the sockets,
//! tracing (paths only: query strings can hold tokens) and body limits.

mod auth;
mod config;
mod conversations;
mod messages;
mod plans;
mod profile;
mod ui;
mod voice;

use axum::{
    extract::{DefaultBodyLimit, Request},
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
        .merge(auth::router())
        .merge(config::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(plans::router())
        .merge(profile::router())
        .merge(voice::router())
        .merge(crate::ws::router())
        .merge(crate::voice::socket::router())
        .merge(ui::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found() -> AppError {
    AppError::NotFound("route")
}
