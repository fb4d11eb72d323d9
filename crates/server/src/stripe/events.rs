//! Stripe webhook events read into what they mean for a user's plan. Only
//! the fields we act on are read; anything else in Stripe's objects is
//! ignored, so newer API versions keep working.

use std::collections::HashMap;

use serde::Deserialize;
use uuid::Uuid;

use crate::config::BillingConfig;

/// A webhook event, its object still untyped.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct CheckoutSession {
    client_reference_id: Option<String>,
    customer: Option<String>,
    subscription: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Subscription {
    id: String,
    customer: Option<String>,
    status: String,
    /// Top level before Stripe's 2025 API versions, per item since.
    current_period_end: Option<i64>,
    #[serde(default)]
    cancel_at_period_end: bool,
    #[serde(default)]
    items: Items,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Items {
    #[serde(default)]
    data: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    price: Price,
    current_period_end: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Price {
    id: String,
}

/// What an event asks of us.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// A checkout was paid: `user_id` is now on `plan`.
    Subscribe {
        user_id: Uuid,
        plan: String,
        customer: Option<String>,
        subscription: Option<String>,
    },
    /// A subscription changed (status, renewal, cancellation, price).
    Update(SubscriptionState),
    /// A subscription ended: its user goes back to the default plan.
    Cancel {
        subscription: String,
        customer: Option<String>,
    },
    /// Nothing to do (an event type we do not handle, or one about
    /// something that is not ours); the reason goes to the log.
    Ignore(&'static str),
}

/// A subscription as `customer.subscription.updated` describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct SubscriptionState {
    pub subscription: String,
    pub customer: Option<String>,
    /// By its price (`billing.prices`), else its `metadata.plan`; `None`:
    /// the plan stays as it is.
    pub plan: Option<String>,
    pub status: String,
    /// Unix seconds of the end of the paid period.
    pub renews_at: Option<i64>,
    pub cancel_at_period_end: bool,
}

/// The event's object is not what its type promises.
#[derive(Debug, thiserror::Error)]
#[error("the event's object is malformed: {0}")]
pub struct MalformedEvent(#[from] serde_json::Error);

/// Read `event`; `billing` maps prices to plans.
pub fn interpret(event: &Event, billing: &BillingConfig) -> Result<Action, MalformedEvent> {
    let object = || event.data.object.clone();
    Ok(match event.kind.as_str() {
        "checkout.session.completed" => {
            let session: CheckoutSession = serde_json::from_value(object())?;
            let Some(user_id) = session
                .client_reference_id
                .as_deref()
                .and_then(|id| Uuid::parse_str(id).ok())
            else {
                return Ok(Action::Ignore("the session names no Colloquy user"));
            };
            let Some(plan) = session.metadata.get("plan").cloned() else {
                return Ok(Action::Ignore("the session names no plan"));
            };
            Action::Subscribe {
                user_id,
                plan,
                customer: session.customer,
                subscription: session.subscription,
            }
        }
        "customer.subscription.updated" => {
            let subscription: Subscription = serde_json::from_value(object())?;
            let first_item = subscription.items.data.first();
            let plan = first_item
                .and_then(|item| billing.plan_of_price(&item.price.id))
                .map(str::to_owned)
                .or_else(|| subscription.metadata.get("plan").cloned());
            let renews_at = subscription
                .current_period_end
                .or_else(|| first_item.and_then(|item| item.current_period_end));
            Action::Update(SubscriptionState {
                subscription: subscription.id,
                customer: subscription.customer,
                plan,
                status: subscription.status,
                renews_at,
                cancel_at_period_end: subscription.cancel_at_period_end,
            })
        }
        "customer.subscription.deleted" => {
            let subscription: Subscription = serde_json::from_value(object())?;
            Action::Cancel {
                subscription: subscription.id,
                customer: subscription.customer,
            }
        }
        _ => Action::Ignore("an event type Colloquy does not handle"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: &str, object: serde_json::Value) -> Event {
        serde_json::from_value(json!({ "id": "evt_1", "type": kind, "data": { "object": object } }))
            .unwrap()
    }

    #[test]
    fn a_subscriptions_plan_comes_from_its_price_then_its_metadata() {
        let billing = BillingConfig {
            prices: [("pro".to_owned(), "price_pro".to_owned())].into(),
            ..BillingConfig::default()
        };
        let object = json!({
            "id": "sub_1", "customer": "cus_1", "status": "active", "cancel_at_period_end": true,
            "items": { "data": [{ "price": { "id": "price_pro" }, "current_period_end": 1_900_000_000 }] },
            "metadata": { "plan": "other" },
        });
        let Action::Update(state) =
            interpret(&event("customer.subscription.updated", object), &billing).unwrap()
        else {
            panic!("an update");
        };
        assert_eq!(state.plan.as_deref(), Some("pro"));
        assert_eq!(state.renews_at, Some(1_900_000_000));
        assert!(state.cancel_at_period_end);

        let unknown_price = json!({
            "id": "sub_1", "status": "past_due", "current_period_end": 5,
            "items": { "data": [{ "price": { "id": "price_x" } }] },
            "metadata": { "plan": "team" },
        });
        let Action::Update(state) = interpret(
            &event("customer.subscription.updated", unknown_price),
            &billing,
        )
        .unwrap() else {
            panic!("an update");
        };
        assert_eq!(state.plan.as_deref(), Some("team"));
        assert_eq!(state.renews_at, Some(5));
    }

    #[test]
    fn sessions_without_a_user_and_unknown_types_are_ignored() {
        let billing = BillingConfig::default();
        let anonymous = json!({ "client_reference_id": null, "metadata": { "plan": "pro" } });
        assert!(matches!(
            interpret(&event("checkout.session.completed", anonymous), &billing).unwrap(),
            Action::Ignore(_)
        ));
        assert!(matches!(
            interpret(&event("invoice.paid", json!({})), &billing).unwrap(),
            Action::Ignore(_)
        ));
        assert!(interpret(&event("customer.subscription.deleted", json!({})), &billing).is_err());
    }
}
