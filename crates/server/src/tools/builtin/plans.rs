//! The voice coach's tools (seed 004), on the caller's own plans only:
//! `get_plan_progress` (where the user is in a plan) and `complete_step`
//! (mark a step done, which moves the plan's `current_order` forward).
//!
//! Both default to the plan step the conversation is about (a voice
//! session's), so a coach on a step needs no ids; a plan or step of
//! another user is "not found", exactly as a missing one.

use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    store::{self, PlanWithSteps, StoreError},
    tools::{Tool, ToolContext, ToolFailure},
};

/// Plans listed when no plan is named and the conversation has none.
const MAX_LISTED_PLANS: u32 = 10;

pub struct GetPlanProgress;

pub struct CompleteStep;

fn id_schema(description: &str) -> Value {
    json!({ "type": "string", "format": "uuid", "maxLength": 36, "description": description })
}

#[async_trait]
impl Tool for GetPlanProgress {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "get_plan_progress".into(),
            description: "The user's progress through a coaching plan: each step in order, \
                          which are completed, and the current step (`current_order`, the \
                          first step not completed; null once all are). Without `plan_id`, \
                          the plan this conversation is about, or else a list of the user's plans."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "plan_id": id_schema("The plan's id; omit for this conversation's plan.") },
                "additionalProperties": false,
            }),
        }
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let plan_id = match optional_id(&arguments, "plan_id")? {
            Some(id) => Some(id),
            None => conversation_step(context).await?.map(|step| step.plan_id),
        };
        let Some(plan_id) = plan_id else {
            return list_plans(context).await;
        };
        let plan = store::find_owned_plan_with_steps(&context.db, plan_id, context.user_id)
            .await
            .map_err(ToolFailure::storage)?
            .ok_or_else(|| ToolFailure::new("not_found", "The user has no such plan."))?;
        let mut progress = summary(&plan);
        progress["steps"] = plan
            .steps
            .iter()
            .map(|step| {
                json!({
                    "step_id": step.id,
                    "order": step.order,
                    "title": step.title,
                    "completed": step.completed_at.is_some(),
                })
            })
            .collect();
        Ok(progress)
    }
}

#[async_trait]
impl Tool for CompleteStep {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "complete_step".into(),
            description: "Mark a step of the user's plan as completed, when the user says \
                          they have done it; the plan's current step moves on to the next \
                          step not completed. Without `step_id`, the step this conversation is about."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "step_id": id_schema("The step's id; omit for this conversation's step.") },
                "additionalProperties": false,
            }),
        }
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let step_id = match optional_id(&arguments, "step_id")? {
            Some(id) => id,
            None => conversation_step(context)
                .await?
                .map(|step| step.id)
                .ok_or_else(|| {
                    ToolFailure::new(
                        "invalid_arguments",
                        "This conversation is not about a plan step: give `step_id`.",
                    )
                })?,
        };
        let completion = match store::complete_step(&context.db, step_id, context.user_id).await {
            Ok(completion) => completion,
            Err(StoreError::NotFound) => {
                return Err(ToolFailure::new("not_found", "The user has no such step."))
            }
            Err(error) => return Err(ToolFailure::storage(error)),
        };
        let step = &completion.step;
        let plan = store::find_owned_plan_with_steps(&context.db, step.plan_id, context.user_id)
            .await
            .map_err(ToolFailure::storage)?
            .ok_or_else(|| ToolFailure::new("not_found", "The user has no such plan."))?;
        let next = plan
            .steps
            .iter()
            .find(|step| step.completed_at.is_none())
            .map(|step| json!({ "step_id": step.id, "order": step.order, "title": step.title }));
        Ok(json!({
            "completed": { "step_id": step.id, "order": step.order, "title": step.title },
            "already_completed": !completion.newly_completed,
            "completed_at": step.completed_at,
            "plan": summary(&plan),
            "next_step": next,
        }))
    }
}

/// A plan's place and counts, without its steps.
fn summary(plan: &PlanWithSteps) -> Value {
    json!({
        "plan_id": plan.plan.id,
        "title": plan.plan.title,
        "current_order": plan.current_order(),
        "total_steps": plan.steps.len(),
        "completed_steps": plan.completed_steps(),
    })
}

/// The user's most recently updated plans, each summarised.
async fn list_plans(context: &ToolContext) -> Result<Value, ToolFailure> {
    let plans = store::list_plans(&context.db, context.user_id, MAX_LISTED_PLANS, 0)
        .await
        .map_err(ToolFailure::storage)?;
    let mut listed = Vec::with_capacity(plans.len());
    for plan in plans {
        let with_steps = store::find_owned_plan_with_steps(&context.db, plan.id, context.user_id)
            .await
            .map_err(ToolFailure::storage)?;
        // A plan deleted since it was listed is simply left out.
        if let Some(with_steps) = with_steps {
            listed.push(summary(&with_steps));
        }
    }
    Ok(json!({ "plans": listed }))
}

/// The plan step this conversation is about, if it has one and it is still the user's.
async fn conversation_step(context: &ToolContext) -> Result<Option<store::Step>, ToolFailure> {
    let Some(step_id) =
        store::conversation_step(&context.db, context.conversation_id, context.user_id)
            .await
            .map_err(ToolFailure::storage)?
    else {
        return Ok(None);
    };
    store::find_owned_step(&context.db, step_id, context.user_id)
        .await
        .map_err(ToolFailure::storage)
}

/// The id under `key`, if given: the schema checked it is a short string,
/// this checks it is a UUID.
fn optional_id(arguments: &Value, key: &str) -> Result<Option<Uuid>, ToolFailure> {
    match arguments.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(text) => Uuid::parse_str(text).map(Some).map_err(|_| {
            ToolFailure::new("invalid_arguments", format!("`{key}` is not a valid id."))
        }),
    }
}
