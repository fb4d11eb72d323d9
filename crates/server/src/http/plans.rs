//! Coaching plans (seed 004's "impacts") and their ordered steps, under
//! `/api/plans` and `/api/steps`. Every query is scoped to the caller, so
//! another user's plan or step is a 404, never a 403 that would confirm it
//! exists. Step positions (`order`, 1-based) stay dense: the store shifts the
//! other steps when one is inserted, moved or deleted.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiJson, ApiPath, ApiQuery, AppError},
    input::{InvalidInput, Title},
    store::{
        self, NewPlan, NewStep, Plan, PlanChanges, PlanWithSteps, Step, StepChanges, StoreError,
        MAX_STEPS_PER_PLAN,
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(create_step))
        .routes(routes!(show_step, update_step, remove_step))
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;
/// Longest plan or step description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest icon, in characters: room for an emoji sequence or an icon name.
const MAX_ICON_CHARS: usize = 64;

// ---- Input parsing ----

fn bad(prefix: &str, error: InvalidInput) -> AppError {
    AppError::bad_request(error.code, format!("{prefix}{}", error.message))
}

/// A trimmed, single-line, non-empty title.
fn parse_title(text: &str, prefix: &str) -> Result<String, AppError> {
    let title = Title::parse(text).map_err(|e| bad(prefix, e))?;
    if title.as_str().is_empty() {
        return Err(AppError::bad_request(
            "empty_title",
            format!("{prefix}title must not be empty"),
        ));
    }
    Ok(title.as_str().to_owned())
}

/// A trimmed description of bounded length; line breaks and tabs allowed.
fn parse_description(text: &str, prefix: &str) -> Result<String, AppError> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(AppError::bad_request(
            "description_too_long",
            format!("{prefix}description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(AppError::bad_request(
            "invalid_characters",
            format!("{prefix}description contains control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A trimmed, single-line icon (an emoji or an icon name); may be empty.
fn parse_icon(text: &str, prefix: &str) -> Result<String, AppError> {
    let text = text.trim();
    if text.chars().count() > MAX_ICON_CHARS || text.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "invalid_icon",
            format!("{prefix}icon must be one line of at most {MAX_ICON_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A 1-based position; past the end is fine (the store clamps it).
fn parse_order(order: i64) -> Result<i64, AppError> {
    if order < 1 {
        return Err(AppError::bad_request(
            "invalid_order",
            "order must be a positive integer (1 is the first step)",
        ));
    }
    Ok(order)
}

fn parse_optional(
    text: Option<&str>,
    prefix: &str,
    parse: fn(&str, &str) -> Result<String, AppError>,
) -> Result<Option<String>, AppError> {
    text.map(|text| parse(text, prefix)).transpose()
}

/// A step as a client sends it.
#[derive(Deserialize, ToSchema)]
struct StepBody {
    /// One non-empty line.
    title: String,
    /// At most 4000 characters; line breaks allowed.
    #[serde(default)]
    description: Option<String>,
    /// An emoji or icon name: one line of at most 64 characters.
    #[serde(default)]
    icon: Option<String>,
}

/// A step's content, parsed.
struct StepInput {
    title: String,
    description: String,
    icon: String,
}

impl StepInput {
    fn parse(body: &StepBody, prefix: &str) -> Result<Self, AppError> {
        Ok(Self {
            title: parse_title(&body.title, prefix)?,
            description: parse_description(body.description.as_deref().unwrap_or(""), prefix)?,
            icon: parse_icon(body.icon.as_deref().unwrap_or(""), prefix)?,
        })
    }

    fn as_new(&self) -> NewStep<'_> {
        NewStep {
            title: &self.title,
            description: &self.description,
            icon: &self.icon,
        }
    }
}

fn plan_not_found(error: StoreError) -> AppError {
    match error {
        StoreError::NotFound => AppError::NotFound("plan"),
        other => other.into(),
    }
}

fn step_not_found(error: StoreError) -> AppError {
    match error {
        StoreError::NotFound => AppError::NotFound("step"),
        other => other.into(),
    }
}

// ---- Plans ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// 1 to 100; 20 when absent.
    limit: Option<u32>,
    /// Plans to skip (a page's `next_offset`).
    offset: Option<u32>,
}

/// One page of the caller's plans.
#[derive(Serialize, ToSchema)]
struct PlanPage {
    plans: Vec<Plan>,
    limit: u32,
    offset: u32,
    has_more: bool,
    /// The `offset` of the next page, when there is one.
    next_offset: Option<u32>,
}

/// The caller's plans, a page at a time.
#[utoipa::path(
    get, path = "/api/plans", tag = "plans",
    params(Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of plans.", body = PlanPage),
        (status = 400, description = "`invalid_query`."),
    ),
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<PlanPage>, AppError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    let offset = page.offset.unwrap_or(0);
    // One extra row tells whether there is a next page.
    let mut plans = store::list_plans(&state.db, user.id, limit + 1, offset).await?;
    let has_more = plans.len() > limit as usize;
    plans.truncate(limit as usize);
    Ok(Json(PlanPage {
        plans,
        limit,
        offset,
        has_more,
        next_offset: has_more.then_some(offset + limit),
    }))
}

#[derive(Deserialize, ToSchema)]
struct CreateBody {
    /// One non-empty line.
    title: String,
    /// At most 4000 characters.
    #[serde(default)]
    description: Option<String>,
    /// The first steps, in order (at most 100).
    #[serde(default)]
    steps: Option<Vec<StepBody>>,
}

/// Create a plan, optionally with its first steps.
#[utoipa::path(
    post, path = "/api/plans", tag = "plans",
    request_body = CreateBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = PlanWithSteps),
        (status = 400, description = "`empty_title`, `description_too_long`, `invalid_icon`, `too_many_steps`, ... (a step's fault is prefixed `steps[i]: `), or a malformed body."),
    ),
)]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<PlanWithSteps>), AppError> {
    let title = parse_title(&body.title, "")?;
    let description = parse_description(body.description.as_deref().unwrap_or(""), "")?;
    let steps = body.steps.unwrap_or_default();
    if steps.len() > MAX_STEPS_PER_PLAN {
        return Err(AppError::bad_request(
            "too_many_steps",
            format!("a plan holds at most {MAX_STEPS_PER_PLAN} steps"),
        ));
    }
    let steps = steps
        .iter()
        .enumerate()
        .map(|(index, step)| StepInput::parse(step, &format!("steps[{index}]: ")))
        .collect::<Result<Vec<_>, _>>()?;
    let new_steps: Vec<NewStep> = steps.iter().map(StepInput::as_new).collect();
    let created = store::create_plan(
        &state.db,
        NewPlan {
            user_id: user.id,
            title: &title,
            description: &description,
            steps: &new_steps,
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, plan_id = %created.plan.id, "plan created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// A plan with its steps in order.
#[utoipa::path(
    get, path = "/api/plans/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The plan.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan.", body = PlanWithSteps),
        (status = 404, description = "`not_found`: no such plan of the caller's."),
    ),
)]
async fn show(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PlanWithSteps>, AppError> {
    let plan = store::find_owned_plan_with_steps(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("plan"))?;
    Ok(Json(plan))
}

#[derive(Deserialize, ToSchema)]
struct UpdateBody {
    /// One non-empty line; absent: unchanged.
    #[serde(default)]
    title: Option<String>,
    /// Absent: unchanged.
    #[serde(default)]
    description: Option<String>,
}

/// Change a plan's title or description.
#[utoipa::path(
    patch, path = "/api/plans/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The plan.")),
    request_body = UpdateBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan as changed.", body = Plan),
        (status = 400, description = "An invalid field or a malformed body."),
        (status = 404, description = "`not_found`: no such plan of the caller's."),
    ),
)]
async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Plan>, AppError> {
    let title = parse_optional(body.title.as_deref(), "", parse_title)?;
    let description = parse_optional(body.description.as_deref(), "", parse_description)?;
    let changes = PlanChanges {
        title: title.as_deref(),
        description: description.as_deref(),
    };
    let plan = store::update_plan(&state.db, id, user.id, changes)
        .await
        .map_err(plan_not_found)?;
    Ok(Json(plan))
}

/// Delete a plan and its steps.
#[utoipa::path(
    delete, path = "/api/plans/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The plan.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`not_found`: no such plan of the caller's."),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    store::delete_plan(&state.db, id, user.id)
        .await
        .map_err(plan_not_found)?;
    tracing::info!(user_id = %user.id, plan_id = %id, "plan deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---- Steps ----

#[derive(Deserialize, ToSchema)]
struct CreateStepBody {
    #[serde(flatten)]
    step: StepBody,
    /// Where to insert (1-based); absent appends.
    #[serde(default)]
    order: Option<i64>,
}

/// Add a step to a plan.
///
/// Appended, or inserted at `order`, the later steps moving down one.
#[utoipa::path(
    post, path = "/api/plans/{id}/steps", tag = "plans",
    params(("id" = Uuid, Path, description = "The plan.")),
    request_body = CreateStepBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = Step),
        (status = 400, description = "An invalid field (`invalid_order`, ...) or a malformed body."),
        (status = 404, description = "`not_found`: no such plan of the caller's."),
        (status = 409, description = "`conflict`: the plan holds 100 steps already."),
    ),
)]
async fn create_step(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(plan_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateStepBody>,
) -> Result<(StatusCode, Json<Step>), AppError> {
    let step = StepInput::parse(&body.step, "")?;
    let order = body.order.map(parse_order).transpose()?;
    // A full plan is a 409 (the request is fine, the plan's state refuses it).
    let step = store::create_step(&state.db, plan_id, user.id, step.as_new(), order)
        .await
        .map_err(plan_not_found)?;
    Ok((StatusCode::CREATED, Json(step)))
}

/// A step.
#[utoipa::path(
    get, path = "/api/steps/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The step.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The step.", body = Step),
        (status = 404, description = "`not_found`: no such step of the caller's."),
    ),
)]
async fn show_step(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Step>, AppError> {
    let step = store::find_owned_step(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("step"))?;
    Ok(Json(step))
}

#[derive(Deserialize, ToSchema)]
struct UpdateStepBody {
    /// Absent: unchanged (so for every field).
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    icon: Option<String>,
    /// Move the step here (1-based; past the end means last).
    #[serde(default)]
    order: Option<i64>,
}

/// Change or move a step.
#[utoipa::path(
    patch, path = "/api/steps/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The step.")),
    request_body = UpdateStepBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The step as changed.", body = Step),
        (status = 400, description = "An invalid field or a malformed body."),
        (status = 404, description = "`not_found`: no such step of the caller's."),
    ),
)]
async fn update_step(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateStepBody>,
) -> Result<Json<Step>, AppError> {
    let title = parse_optional(body.title.as_deref(), "", parse_title)?;
    let description = parse_optional(body.description.as_deref(), "", parse_description)?;
    let icon = parse_optional(body.icon.as_deref(), "", parse_icon)?;
    let order = body.order.map(parse_order).transpose()?;
    let changes = StepChanges {
        title: title.as_deref(),
        description: description.as_deref(),
        icon: icon.as_deref(),
        order,
    };
    let step = store::update_step(&state.db, id, user.id, changes)
        .await
        .map_err(step_not_found)?;
    Ok(Json(step))
}

/// Delete a step; the later ones move up.
#[utoipa::path(
    delete, path = "/api/steps/{id}", tag = "plans",
    params(("id" = Uuid, Path, description = "The step.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`not_found`: no such step of the caller's."),
    ),
)]
async fn remove_step(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    store::delete_step(&state.db, id, user.id)
        .await
        .map_err(step_not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_must_have_content() {
        assert_eq!(parse_title("  Run a 5k ", "").unwrap(), "Run a 5k");
        assert!(parse_title("   ", "").is_err());
        assert!(parse_title("two\nlines", "").is_err());
        assert!(parse_title(&"t".repeat(Title::MAX_CHARS + 1), "").is_err());
    }

    #[test]
    fn descriptions_keep_lines_but_not_other_controls() {
        assert_eq!(parse_description(" a\nb\t", "").unwrap(), "a\nb");
        assert!(parse_description("a\u{7}b", "").is_err());
        assert!(parse_description(&"d".repeat(MAX_DESCRIPTION_CHARS + 1), "").is_err());
        // Characters, not bytes.
        assert!(parse_description(&"é".repeat(MAX_DESCRIPTION_CHARS), "").is_ok());
    }

    #[test]
    fn icons_are_short_single_lines() {
        assert_eq!(parse_icon(" 🏃‍♀️ ", "").unwrap(), "🏃‍♀️");
        assert_eq!(parse_icon("", "").unwrap(), "");
        assert!(parse_icon("a\nb", "").is_err());
        assert!(parse_icon(&"i".repeat(MAX_ICON_CHARS + 1), "").is_err());
    }

    #[test]
    fn orders_start_at_one() {
        assert_eq!(parse_order(1).unwrap(), 1);
        assert!(parse_order(0).is_err());
        assert!(parse_order(-3).is_err());
    }

    #[test]
    fn errors_in_initial_steps_name_the_step() {
        let body = StepBody {
            title: " ".into(),
            description: None,
            icon: None,
        };
        let Err(AppError::BadRequest { code, message }) = StepInput::parse(&body, "steps[2]: ")
        else {
            panic!("an empty title is refused");
        };
        assert_eq!(code, "empty_title");
        assert!(message.starts_with("steps[2]: "), "{message}");
    }
}
