//! Turn timings over HTTP: a conversation's timings for its owner, and the
//! server-wide latency histograms in Prometheus format at `/metrics`.

use axum::{extract::State, http::header, response::IntoResponse, Json};
use prometheus_client::encoding::text::encode_eof;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{AdminUser, AuthUser},
    error::{ApiPath, AppError},
    store::{self, TurnTiming},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversation_timings))
        .routes(routes!(metrics))
}

/// A conversation's turn timings.
#[derive(Serialize, ToSchema)]
struct Timings {
    timings: Vec<TurnTiming>,
}

/// When each turn of a conversation reached its milestones.
///
/// Instants in epoch milliseconds: end of speech, transcript, first text,
/// first audio, end of the turn.
#[utoipa::path(
    get, path = "/api/conversations/{id}/timings", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The timings, oldest first.", body = Timings),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
    ),
)]
async fn conversation_timings(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Timings>, AppError> {
    let owned = store::find_conversation(&state.db, id, user.id).await?;
    if owned.is_none() {
        return Err(AppError::NotFound("conversation"));
    }
    let timings = store::list_turn_timings(&state.db, id).await?;
    Ok(Json(Timings { timings }))
}

/// Latency histograms of all turns, voice turns and the cluster, and
/// usage counters by model.
///
/// In the OpenMetrics text format, for the users named in `admins`: they are
/// aggregate figures, but about everyone's use of the server.
#[utoipa::path(
    get, path = "/metrics", tag = "server",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text", body = String),
        (status = 403, description = "`admin_required`."),
    ),
)]
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
            state.billing.metrics.render_into(&mut out);
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
