//! What Stripe told us: the webhook events already acted on (idempotency)
//! and which Stripe customer and subscription pay for which user.

use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::{now_millis, parse_id, StoreError};

/// Record that event `event_id` is being acted on; `false` if it already
/// was (a replay). Call inside the transaction that acts on it, so the
/// record and its effect commit or vanish together.
pub async fn record_stripe_event(
    db: impl AnyExecutor<'_>,
    event_id: &str,
    event_type: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (event_id, event_type, received_at) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(event_type)
    .bind(now_millis())
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Remember that `customer_id` pays for `user_id` through `subscription_id`.
pub async fn link_stripe_customer(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    customer_id: Option<&str>,
    subscription_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO stripe_customers (user_id, customer_id, subscription_id, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id,
             subscription_id = excluded.subscription_id, updated_at = excluded.updated_at",
    )
    .bind(user_id.to_string())
    .bind(customer_id)
    .bind(subscription_id)
    .bind(now_millis())
    .execute(db)
    .await
    .map_err(super::not_found_if_orphan)?;
    Ok(())
}

/// The user a subscription (else its customer) pays for, if we know it.
pub async fn stripe_subscriber(
    db: &mut sqlx::AnyConnection,
    subscription_id: &str,
    customer_id: Option<&str>,
) -> Result<Option<Uuid>, StoreError> {
    let by_subscription =
        sqlx::query("SELECT user_id FROM stripe_customers WHERE subscription_id = $1")
            .bind(subscription_id)
            .fetch_optional(&mut *db)
            .await?;
    let row = match (by_subscription, customer_id) {
        (Some(row), _) => Some(row),
        (None, Some(customer_id)) => {
            sqlx::query(
                "SELECT user_id FROM stripe_customers WHERE customer_id = $1
                 ORDER BY updated_at DESC LIMIT 1",
            )
            .bind(customer_id)
            .fetch_optional(&mut *db)
            .await?
        }
        (None, None) => None,
    };
    row.map(|row| parse_id(row.try_get("user_id")?)).transpose()
}
