//! Turn timings over HTTP: a conversation's timings for its owner, and the
//! server-wide latency histograms in Prometheus format at `/metrics`.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Json, Router};
use prometheus_client::encoding::text::encode_eof;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    auth::{AdminUser, AuthUser},
    error::{ApiPath, AppError},
    store, AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations/{id}/timings", get(conversation_timings))
        .route("/metrics", get(metrics))
}

async fn conversation_timings(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, AppError> {
    let owned = store::find_conversation(&state.db, id, user.id).await?;
    if owned.is_none() {
        return Err(AppError::NotFound("conversation"));
    }
    let timings = store::list_turn_timings(&state.db, id).await?;
    Ok(Json(json!({ "timings": timings })))
}

/// Latency histograms of all turns and of voice turns, for the users named in `admins`: they
/// are aggregate figures, but about everyone's use of the server.
async fn metrics(State(state): State<AppState>, AdminUser(_): AdminUser) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            let mut out = String::new();
            state.voice.metrics.render_into(&mut out);
            state.turns.metrics().render_into(&mut out);
            if let Some(cluster) = &state.cluster {
                cluster.render_into(&mut out);
            }
            if let Err(error) = encode_eof(&mut out) {
                tracing::error!(%error, "encoding metrics failed");
            }
            out
        },
    )
}
