//! Conversation summaries over HTTP: make one with the model on request
//! (rate-limited per user, under the server-wide generation permits), and
//! read the stored one. The same stored summary stands in for the turns a
//! long conversation's prompt trims (`turn::rolling`).

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiPath, AppError},
    store::{self, StoredSummary},
    turn::SummaryError,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summarize, stored_summary))
}

/// A conversation's summary.
#[derive(Serialize, ToSchema)]
struct Summary {
    summary: String,
    /// The newest message the summary covers.
    through_message_id: Uuid,
    updated_at: DateTime<Utc>,
}

impl From<StoredSummary> for Summary {
    fn from(stored: StoredSummary) -> Self {
        Self {
            summary: stored.summary,
            through_message_id: stored.through_message_id,
            updated_at: stored.updated_at,
        }
    }
}

fn summary_error(error: SummaryError) -> AppError {
    match error {
        SummaryError::NoModel => AppError::Unavailable {
            code: "no_model",
            message: "no AI model is configured on this server".into(),
        },
        SummaryError::Overloaded => AppError::overloaded(),
        SummaryError::NothingToSummarize => {
            AppError::Conflict("the conversation has no messages to summarize".into())
        }
        SummaryError::Empty => AppError::Provider {
            status: StatusCode::BAD_GATEWAY,
            code: "empty_summary",
            message: "the model gave no usable summary; try again".into(),
        },
        SummaryError::Provider(error) => AppError::provider(&error),
        SummaryError::Store(error) => error.into(),
    }
}

/// Summarize a conversation with the model and store the summary.
///
/// Covers the active path (the branch shown) up to now, continuing the
/// stored summary when it covers an earlier part of that path (a summary
/// of another branch is started over; a very long conversation is covered
/// from where the last summary stopped, as far as one capped prompt
/// reaches: `through_message_id` says how far).
/// Rate-limited per user (`summaries.per_hour_per_user`); at most
/// `summaries.max_chars` characters.
#[utoipa::path(
    post, path = "/api/conversations/{id}/summary", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new summary, stored.", body = Summary),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
        (status = 409, description = "`conflict`: the conversation has no messages yet."),
        (status = 429, description = "`rate_limited`: too many summaries."),
        (status = 502, description = "The model failed (its error code)."),
        (status = 503, description = "`overloaded` or `no_model`."),
    ),
)]
async fn summarize(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Summary>, AppError> {
    store::find_conversation(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    state
        .limits
        .check_summary(user.id)
        .map_err(|retry_after| AppError::TooManyRequests {
            message: "too many summaries; try again later",
            retry_after,
        })?;
    let summary = state.turns.summarize(id).await.map_err(summary_error)?;
    Ok(Json(summary.into()))
}

/// The stored summary of a conversation's branch shown (its active path).
#[utoipa::path(
    get, path = "/api/conversations/{id}/summary", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored summary.", body = Summary),
        (status = 404, description = "`not_found`: no such conversation of the caller's, or no summary of the branch shown yet."),
    ),
)]
async fn stored_summary(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Summary>, AppError> {
    if store::find_conversation(&state.db, id, user.id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound("conversation"));
    }
    let summary = store::find_summary(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("summary"))?;
    // A summary of a branch no longer shown says nothing about this one.
    let shown = match store::active_leaf(&state.db, id).await? {
        Some(leaf) => store::path_contains(&state.db, id, leaf, summary.through_message_id).await?,
        None => false,
    };
    if !shown {
        return Err(AppError::NotFound("summary"));
    }
    Ok(Json(summary.into()))
}
