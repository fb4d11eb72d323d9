//! Usage and plans: `GET /api/usage` tells the caller what they spent per
//! UTC day and model, their plan and what is left of it today;
//! `GET /api/admin/usage` tells administrators every user's spending over
//! a range of days, the biggest spenders first.

use axum::{extract::State, Json};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::days;
use crate::{
    auth::{AdminUser, AuthUser},
    billing::{quota::Allowances, CurrentPlan},
    config::PlanConfig,
    error::{ApiQuery, AppError},
    store::{self, UsageDay, UserUsage},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(admin_usage))
}

/// Longest range one request may cover, in days.
pub const MAX_USAGE_DAYS: u64 = 366;
/// Most rows `GET /api/admin/usage` answers (and its default).
pub const MAX_ADMIN_USAGE_ROWS: i64 = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// First day (`YYYY-MM-DD`, UTC); 29 days before `to` when absent.
    from: Option<NaiveDate>,
    /// Last day, included; today (UTC) when absent. At most 366 days in all.
    to: Option<NaiveDate>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AdminQuery {
    /// First day (`YYYY-MM-DD`, UTC); 29 days before `to` when absent.
    from: Option<NaiveDate>,
    /// Last day, included; today (UTC) when absent. At most 366 days in all.
    to: Option<NaiveDate>,
    /// Most rows (1 to 1000, the default).
    limit: Option<i64>,
}

/// A plan as the caller sees it.
#[derive(Serialize, ToSchema)]
struct PlanView {
    #[serde(flatten)]
    plan: CurrentPlan,
    /// The plan's limits (`null`: unlimited) and models (`null`: all).
    limits: PlanConfig,
}

/// What `GET /api/usage` answers.
#[derive(Serialize, ToSchema)]
struct UsageReport {
    from: String,
    to: String,
    /// Days with usage, oldest first, one row per model.
    days: Vec<UsageDay>,
    plan: PlanView,
    /// Today's use against each daily limit (`left: null`: unlimited).
    today: Allowances,
    /// When today's quota starts again (the next UTC midnight).
    resets_at: chrono::DateTime<chrono::Utc>,
}

/// What `GET /api/admin/usage` answers.
#[derive(Serialize, ToSchema)]
struct AdminUsageReport {
    from: String,
    to: String,
    /// Each user's usage per model over the range, the most tokens first.
    users: Vec<UserUsage>,
}

/// The days `from..=to` of a usage report, defaulted and checked.
fn day_range(
    state: &AppState,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let today = state.billing.today();
    days::day_range(today, from, to, MAX_USAGE_DAYS, "a usage report")
}

/// The caller's usage, plan and what is left today.
#[utoipa::path(
    get, path = "/api/usage", tag = "usage",
    params(RangeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's usage.", body = UsageReport),
        (status = 400, description = "`invalid_query`: bad dates, `from` after `to`, or too long a range."),
    ),
)]
async fn usage(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<UsageReport>, AppError> {
    let (from, to) = day_range(&state, query.from, query.to)?;
    let (from, to) = (from.to_string(), to.to_string());
    let days = store::user_usage_days(&state.db, user.id, &from, &to).await?;
    let plan = state
        .billing
        .plan_of(user.id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    let used = state.billing.used_today(user.id).await?;
    Ok(Json(UsageReport {
        from,
        to,
        days,
        today: Allowances::of(&plan.limits, &used),
        plan: PlanView {
            limits: plan.limits.clone(),
            plan,
        },
        resets_at: state.billing.resets_at(),
    }))
}

/// Every user's usage per model over a range of days.
///
/// Administrators only (the `admins` setting).
#[utoipa::path(
    get, path = "/api/admin/usage", tag = "usage",
    params(AdminQuery),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The usage.", body = AdminUsageReport),
        (status = 400, description = "`invalid_query`: bad dates, `from` after `to`, too long a range or a bad `limit`."),
        (status = 403, description = "`admin_required`."),
    ),
)]
async fn admin_usage(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    ApiQuery(query): ApiQuery<AdminQuery>,
) -> Result<Json<AdminUsageReport>, AppError> {
    let (from, to) = day_range(&state, query.from, query.to)?;
    let limit = query.limit.unwrap_or(MAX_ADMIN_USAGE_ROWS);
    if !(1..=MAX_ADMIN_USAGE_ROWS).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_ADMIN_USAGE_ROWS}"),
        ));
    }
    let (from, to) = (from.to_string(), to.to_string());
    let users = store::usage_by_user(&state.db, &from, &to, limit).await?;
    Ok(Json(AdminUsageReport { from, to, users }))
}
