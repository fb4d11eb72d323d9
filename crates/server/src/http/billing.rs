//! Stripe billing over HTTP: `POST /api/billing/checkout` opens a Checkout
//! Session for a plan, and `POST /api/billing/stripe/webhook` turns Stripe's
//! signed events into plan changes. Each event is acted on once: its id is
//! stored in the same transaction as the plan change, so a replay changes
//! nothing and a crash loses nothing (Stripe resends what we did not answer
//! 200).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    Json,
};
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::AuthUser,
    error::{ApiJson, AppError},
    store::{self, NewUserPlan},
    stripe::{
        checkout::CheckoutRequest,
        events::{self, Action, Event, SubscriptionState},
        signature,
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(webhook))
}

fn not_configured(message: &str) -> AppError {
    AppError::Provider {
        status: StatusCode::NOT_IMPLEMENTED,
        code: "billing_not_configured",
        message: message.into(),
    }
}

#[derive(Deserialize, ToSchema)]
struct CheckoutBody {
    /// A plan with a price in `billing.prices`.
    plan: String,
}

/// Where to send the user to pay.
#[derive(Serialize, ToSchema)]
struct CheckoutCreated {
    /// Stripe Checkout's page for this session.
    url: String,
}

/// Start paying for a plan.
///
/// Creates a Stripe Checkout Session (a subscription to the plan's price)
/// for the signed-in caller and returns its URL. Once paid, Stripe's
/// `checkout.session.completed` webhook moves the caller to the plan.
#[utoipa::path(
    post, path = "/api/billing/checkout", tag = "billing",
    request_body = CheckoutBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The Checkout page.", body = CheckoutCreated),
        (status = 400, description = "`unknown_plan` (no price for it) or `sign_in_required` (guests cannot subscribe)."),
        (status = 501, description = "`billing_not_configured`: no `STRIPE_API_KEY`, or no Checkout return URLs."),
        (status = 502, description = "`billing_unavailable`: Stripe refused or did not answer."),
    ),
)]
async fn checkout(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> Result<Json<CheckoutCreated>, AppError> {
    let billing = &state.config.billing;
    let stripe = state.stripe.as_ref().ok_or_else(|| {
        not_configured("billing is not set up on this server (no STRIPE_API_KEY)")
    })?;
    let (Some(success_url), Some(cancel_url)) = (&billing.success_url, &billing.cancel_url) else {
        return Err(not_configured(
            "billing.success_url and billing.cancel_url must be set for checkout",
        ));
    };
    if user.is_anonymous {
        return Err(AppError::bad_request(
            "sign_in_required",
            "sign in with an account before subscribing",
        ));
    }
    let price = billing.prices.get(&body.plan).ok_or_else(|| {
        AppError::bad_request("unknown_plan", "no plan of that name can be bought")
    })?;
    let session = stripe
        .create_checkout_session(&CheckoutRequest {
            user_id: user.id,
            email: user.email.as_deref(),
            plan: &body.plan,
            price,
            success_url,
            cancel_url,
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "creating a Stripe Checkout Session failed");
            AppError::Provider {
                status: StatusCode::BAD_GATEWAY,
                code: "billing_unavailable",
                message: "the payment provider could not start a checkout; try again later".into(),
            }
        })?;
    tracing::info!(user_id = %user.id, session = %session.id, plan = %body.plan, "checkout started");
    Ok(Json(CheckoutCreated { url: session.url }))
}

/// Receive a Stripe webhook event.
///
/// Verified by its `Stripe-Signature` header (HMAC-SHA256 with
/// `STRIPE_WEBHOOK_SECRET`, timestamp within `billing.webhook_tolerance_secs`).
/// Handles `checkout.session.completed`, `customer.subscription.updated`
/// and `customer.subscription.deleted`; other types are acknowledged and
/// ignored. A replayed event is acknowledged and changes nothing.
#[utoipa::path(
    post, path = "/api/billing/stripe/webhook", tag = "billing",
    request_body(content = Value, description = "A Stripe event, as Stripe signed it."),
    responses(
        (status = 200, description = "Received (`handled`, `ignored` or `duplicate`)."),
        (status = 400, description = "`invalid_signature` (missing, wrong or stale) or `invalid_event`; nothing changed."),
        (status = 501, description = "`billing_not_configured`: no `STRIPE_WEBHOOK_SECRET`."),
    ),
)]
async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let billing = &state.config.billing;
    let secret = billing.stripe_webhook_secret.as_deref().ok_or_else(|| {
        not_configured("Stripe webhooks are not set up on this server (no STRIPE_WEBHOOK_SECRET)")
    })?;
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    signature::verify(
        header,
        &body,
        secret.as_bytes(),
        billing.webhook_tolerance_secs,
        Utc::now().timestamp(),
    )
    .map_err(|error| {
        tracing::warn!(%error, "Stripe webhook refused");
        AppError::bad_request("invalid_signature", error.to_string())
    })?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request("invalid_event", e.to_string()))?;
    let action = events::interpret(&event, billing)
        .map_err(|e| AppError::bad_request("invalid_event", e.to_string()))?;
    if let Action::Ignore(reason) = action {
        tracing::info!(event = %event.id, kind = %event.kind, reason, "Stripe event ignored");
        return Ok(Json(json!({ "received": true, "result": "ignored" })));
    }
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    if !store::record_stripe_event(&mut *tx, &event.id, &event.kind).await? {
        tracing::info!(event = %event.id, "Stripe event replayed; already acted on");
        return Ok(Json(json!({ "received": true, "result": "duplicate" })));
    }
    let outcome = apply(&state, &mut tx, action).await?;
    tx.commit()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    tracing::info!(event = %event.id, kind = %event.kind, outcome, "Stripe event handled");
    Ok(Json(json!({ "received": true, "result": outcome })))
}

/// Act on `action` inside `tx`; what happened, for the log and the answer.
async fn apply(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    action: Action,
) -> Result<&'static str, AppError> {
    let config = &state.config;
    match action {
        Action::Subscribe {
            user_id,
            plan,
            customer,
            subscription,
        } => {
            if !config.effective_plans().contains_key(&plan) {
                tracing::warn!(%plan, "a paid checkout names a plan this server lacks");
                return Ok("unknown_plan");
            }
            if store::find_user(&mut **tx, user_id).await?.is_none() {
                return Ok("unknown_user");
            }
            store::link_stripe_customer(
                &mut **tx,
                user_id,
                customer.as_deref(),
                subscription.as_deref(),
            )
            .await?;
            store::set_user_plan(
                &mut **tx,
                &NewUserPlan {
                    user_id,
                    plan: &plan,
                    status: "active",
                    renews_at: None,
                    cancel_at_period_end: false,
                },
            )
            .await?;
            Ok("handled")
        }
        Action::Update(update) => update_subscription(state, tx, update).await,
        Action::Cancel {
            subscription,
            customer,
        } => {
            let Some(user_id) =
                store::stripe_subscriber(tx, &subscription, customer.as_deref()).await?
            else {
                return Ok("unknown_subscription");
            };
            store::set_user_plan(
                &mut **tx,
                &NewUserPlan {
                    user_id,
                    plan: &config.default_plan,
                    status: "canceled",
                    renews_at: None,
                    cancel_at_period_end: false,
                },
            )
            .await?;
            Ok("handled")
        }
        Action::Ignore(_) => Ok("ignored"),
    }
}

async fn update_subscription(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    update: SubscriptionState,
) -> Result<&'static str, AppError> {
    let Some(user_id) =
        store::stripe_subscriber(tx, &update.subscription, update.customer.as_deref()).await?
    else {
        return Ok("unknown_subscription");
    };
    let current = store::find_user_plan(&mut **tx, user_id).await?;
    let known = |plan: &String| state.config.effective_plans().contains_key(plan);
    let plan = update
        .plan
        .filter(known)
        .or_else(|| current.map(|row| row.plan))
        .unwrap_or_else(|| state.config.default_plan.clone());
    store::set_user_plan(
        &mut **tx,
        &NewUserPlan {
            user_id,
            plan: &plan,
            status: &update.status,
            renews_at: update
                .renews_at
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single()),
            cancel_at_period_end: update.cancel_at_period_end,
        },
    )
    .await?;
    Ok("handled")
}
