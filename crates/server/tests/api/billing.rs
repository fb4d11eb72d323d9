//! Stripe billing end to end (issue 17): signed webhooks turning payments
//! into plans exactly once, and Checkout against a fake Stripe API.

use chrono::Utc;
use colloquy::store;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    fake_stripe::{FakeStripe, API_KEY},
    helpers::{spawn_app_with, TestApp},
};

const WEBHOOK_SECRET: &str = "whsec_test_colloquy";

async fn billing_app(stripe: Option<&FakeStripe>, api_key: Option<&str>) -> TestApp {
    let base = stripe.map(FakeStripe::base_url);
    let api_key = api_key.map(str::to_owned);
    spawn_app_with(|config| {
        config
            .plans
            .insert("pro".into(), colloquy::config::PlanConfig::default());
        config.billing.prices = [("pro".to_owned(), "price_pro_monthly".to_owned())].into();
        config.billing.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        config.billing.stripe_api_key = api_key;
        if let Some(base) = base {
            config.billing.stripe_api_base = base;
        }
        config.billing.success_url = Some("https://chat.example.com/?checkout=done".into());
        config.billing.cancel_url = Some("https://chat.example.com/?checkout=cancelled".into());
    })
    .await
}

fn sign(body: &str, timestamp: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POST `body` to the webhook with `header` as `Stripe-Signature`.
async fn deliver_with(app: &TestApp, body: &str, header: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/billing/stripe/webhook"))
        .header("Stripe-Signature", header)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// POST `event`, signed now with the right secret.
async fn deliver(app: &TestApp, event: &Value) -> (u16, Value) {
    let body = event.to_string();
    let now = Utc::now().timestamp();
    let header = format!("t={now},v1={}", sign(&body, now, WEBHOOK_SECRET));
    deliver_with(app, &body, &header).await
}

async fn user_id(app: &TestApp, token: &str) -> Uuid {
    let me: Value = app.get("/api/auth/me", token).await.json().await.unwrap();
    me["id"].as_str().unwrap().parse().unwrap()
}

async fn plan_of(app: &TestApp, user: Uuid) -> Option<store::UserPlan> {
    store::find_user_plan(&app.state.db, user).await.unwrap()
}

fn completed(event_id: &str, user: Uuid) -> Value {
    json!({
        "id": event_id, "object": "event", "type": "checkout.session.completed",
        "data": { "object": {
            "id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
            "client_reference_id": user.to_string(), "customer": "cus_1",
            "subscription": "sub_1", "metadata": { "plan": "pro" },
        } },
    })
}

fn subscription_event(
    event_id: &str,
    kind: &str,
    status: &str,
    cancel_at_period_end: bool,
) -> Value {
    json!({
        "id": event_id, "object": "event", "type": kind,
        "data": { "object": {
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
            "cancel_at_period_end": cancel_at_period_end, "current_period_end": 1_900_000_000,
            "items": { "data": [{ "price": { "id": "price_pro_monthly" } }] },
        } },
    })
}

#[tokio::test]
async fn a_signed_checkout_completion_puts_the_user_on_the_plan() {
    let app = billing_app(None, None).await;
    let user = user_id(&app, &app.register("payer@example.com").await).await;
    let (status, body) = deliver(&app, &completed("evt_1", user)).await;
    assert_eq!(
        (status, &body["result"]),
        (200, &json!("handled")),
        "{body}"
    );
    let plan = plan_of(&app, user).await.expect("a plan row");
    assert_eq!(
        (plan.plan.as_str(), plan.status.as_str()),
        ("pro", "active")
    );
}

#[tokio::test]
async fn tampered_stale_or_unsigned_webhooks_are_refused_and_change_nothing() {
    let app = billing_app(None, None).await;
    let user = user_id(&app, &app.register("victim@example.com").await).await;
    let body = completed("evt_1", user).to_string();
    let now = Utc::now().timestamp();
    let good = sign(&body, now, WEBHOOK_SECRET);
    let tampered = body.replace("\"pro\"", "\"pro \"");
    let stale = now - 301;
    let cases = [
        (tampered.clone(), format!("t={now},v1={good}")),
        (
            body.clone(),
            format!("t={stale},v1={}", sign(&body, stale, WEBHOOK_SECRET)),
        ),
        (
            body.clone(),
            format!("t={now},v1={}", sign(&body, now, "whsec_wrong")),
        ),
        (body.clone(), String::new()),
    ];
    for (body, header) in &cases {
        let (status, error) = deliver_with(&app, body, header).await;
        assert_eq!(status, 400, "{header}: {error}");
        assert_eq!(error["error"]["code"], "invalid_signature");
    }
    assert!(plan_of(&app, user).await.is_none());
}

#[tokio::test]
async fn any_matching_v1_among_several_is_accepted() {
    let app = billing_app(None, None).await;
    let user = user_id(&app, &app.register("rolled@example.com").await).await;
    let body = completed("evt_1", user).to_string();
    let now = Utc::now().timestamp();
    let header = format!(
        "t={now},v1={},v1={},v0=00",
        sign(&body, now, "whsec_old_secret"),
        sign(&body, now, WEBHOOK_SECRET)
    );
    let (status, answer) = deliver_with(&app, &body, &header).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(plan_of(&app, user).await.unwrap().plan, "pro");
}

#[tokio::test]
async fn subscription_updates_and_deletion_follow_the_subscription_and_replays_change_nothing() {
    let app = billing_app(None, None).await;
    let user = user_id(&app, &app.register("subscriber@example.com").await).await;
    assert_eq!(deliver(&app, &completed("evt_1", user)).await.0, 200);

    let update = subscription_event("evt_2", "customer.subscription.updated", "past_due", true);
    let (status, body) = deliver(&app, &update).await;
    assert_eq!(
        (status, &body["result"]),
        (200, &json!("handled")),
        "{body}"
    );
    let plan = plan_of(&app, user).await.unwrap();
    assert_eq!(
        (plan.plan.as_str(), plan.status.as_str()),
        ("pro", "past_due")
    );
    assert!(plan.cancel_at_period_end);
    assert_eq!(plan.renews_at.unwrap().timestamp(), 1_900_000_000);

    let deleted = subscription_event("evt_3", "customer.subscription.deleted", "canceled", false);
    assert_eq!(deliver(&app, &deleted).await.0, 200);
    let plan = plan_of(&app, user).await.unwrap();
    assert_eq!(
        (plan.plan.as_str(), plan.status.as_str()),
        ("free", "canceled")
    );

    // Stripe delivering the checkout again must not resurrect the plan.
    let (status, body) = deliver(&app, &completed("evt_1", user)).await;
    assert_eq!(
        (status, &body["result"]),
        (200, &json!("duplicate")),
        "{body}"
    );
    assert_eq!(plan_of(&app, user).await.unwrap().plan, "free");
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let app = billing_app(None, None).await;
    let event =
        json!({ "id": "evt_9", "type": "invoice.paid", "data": { "object": { "id": "in_1" } } });
    let (status, body) = deliver(&app, &event).await;
    assert_eq!(
        (status, &body["result"]),
        (200, &json!("ignored")),
        "{body}"
    );
    let (status, body) = deliver(&app, &json!({ "not": "an event" })).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_event"))
    );
}

#[tokio::test]
async fn checkout_creates_a_subscription_session_through_stripes_form_api() {
    let stripe = FakeStripe::start().await;
    let app = billing_app(Some(&stripe), Some(API_KEY)).await;
    // What the UI's upgrade button reads to name a plan.
    let config = app.client_config().await;
    assert_eq!(
        config["billing"],
        json!({ "checkout": true, "plans": ["pro"] })
    );
    let token = app.register("buyer@example.com").await;
    let user = user_id(&app, &token).await;
    let response = app
        .post_json("/api/billing/checkout", &token, json!({ "plan": "pro" }))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["url"], "https://checkout.stripe.com/c/pay/cs_test_1");

    let received = stripe.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.authorization, format!("Bearer {API_KEY}"));
    assert_eq!(request.content_type, "application/x-www-form-urlencoded");
    assert_eq!(request.field("mode"), Some("subscription"));
    assert_eq!(
        request.field("line_items[0][price]"),
        Some("price_pro_monthly")
    );
    assert_eq!(
        request.field("client_reference_id"),
        Some(user.to_string().as_str())
    );
    assert_eq!(request.field("metadata[plan]"), Some("pro"));
    assert_eq!(request.field("customer_email"), Some("buyer@example.com"));
    assert_eq!(
        request.field("success_url"),
        Some("https://chat.example.com/?checkout=done")
    );
    assert_eq!(
        request.field("cancel_url"),
        Some("https://chat.example.com/?checkout=cancelled")
    );

    // Bad requests never reach Stripe.
    let unknown = app
        .post_json(
            "/api/billing/checkout",
            &token,
            json!({ "plan": "platinum" }),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let guest = app.guest().await;
    let as_guest = app
        .post_json("/api/billing/checkout", &guest, json!({ "plan": "pro" }))
        .await;
    assert_eq!(as_guest.status(), 400);
    let signed_out = app
        .http
        .post(app.url("/api/billing/checkout"))
        .json(&json!({ "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 401);
    assert_eq!(stripe.received().len(), 1);
}

#[tokio::test]
async fn checkout_without_a_stripe_key_is_501_and_a_refused_key_is_502() {
    let app = billing_app(None, None).await;
    let config = app.client_config().await;
    assert_eq!(
        config["billing"],
        json!({ "checkout": false, "plans": ["pro"] })
    );
    let token = app.register("early@example.com").await;
    let response = app
        .post_json("/api/billing/checkout", &token, json!({ "plan": "pro" }))
        .await;
    assert_eq!(response.status(), 501);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "billing_not_configured");

    let stripe = FakeStripe::start().await;
    let app = billing_app(Some(&stripe), Some("sk_test_revoked")).await;
    let token = app.register("late@example.com").await;
    let response = app
        .post_json("/api/billing/checkout", &token, json!({ "plan": "pro" }))
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "billing_unavailable");
    assert_eq!(stripe.received()[0].authorization, "Bearer sk_test_revoked");
}

#[tokio::test]
async fn webhooks_without_a_signing_secret_are_501() {
    let app = spawn_app_with(|_| {}).await;
    let (status, body) = deliver(&app, &json!({ "id": "evt_1", "type": "invoice.paid" })).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["error"]["code"], "billing_not_configured");
}
