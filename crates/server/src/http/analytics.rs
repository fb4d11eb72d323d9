//! Product analytics (seed 000: "paywall nudges, upgrade clicks"):
//! `POST /api/analytics/events` takes a batch from any signed-in or guest
//! user; `GET /api/analytics/summary` gives administrators the counts per
//! event name per UTC day. The server records its own events too
//! (`turn_completed`), under names clients may not use.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::days::day_range;
use crate::{
    auth::{AdminUser, AuthUser},
    error::{ApiJson, AppError},
    store::{self, NewAnalyticsEvent, DAY_MILLIS},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record))
        .routes(routes!(summary))
}

/// Most events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 50;
/// Largest `properties` object of one event, as compact JSON.
pub const MAX_PROPERTIES_BYTES: usize = 4 * 1024;
/// Oldest `ts` accepted: a client flushing a queue it kept offline.
const MAX_EVENT_AGE_DAYS: i64 = 7;
/// Newest `ts` accepted, past the server's clock (clients' clocks drift).
const MAX_CLOCK_SKEW_MINUTES: i64 = 10;
/// Longest summary range, in days.
const MAX_SUMMARY_DAYS: u64 = 366;
/// Names the server records itself; a client cannot forge them.
const SERVER_EVENTS: [&str; 3] = [
    "turn_completed",
    "conversation_shared",
    "conversation_forked",
];

/// One event of a batch, as a client sends it. Only the document uses this
/// type: [`parse_event`] reads the JSON itself, to name the field at fault.
#[allow(dead_code)]
#[derive(ToSchema)]
struct AnalyticsEvent {
    /// `^[a-z][a-z0-9_]{0,63}$`; not one of the server's own names
    /// (`turn_completed`, `conversation_shared`, `conversation_forked`).
    name: String,
    /// At most 4 KiB as JSON.
    properties: Option<Map<String, Value>>,
    /// RFC 3339, within the last 7 days; the time received when absent.
    ts: Option<DateTime<Utc>>,
}

/// How many events of a batch were stored.
#[derive(Serialize, ToSchema)]
struct Accepted {
    accepted: usize,
}

/// Record a batch of analytics events.
///
/// Signed-in and guest users alike; at most 50 events a batch, batches
/// rate-limited per user. A bad event fails the whole batch with a 400
/// naming its field (`events[1].name`).
#[utoipa::path(
    post, path = "/api/analytics/events", tag = "analytics",
    request_body = Vec<AnalyticsEvent>,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Stored.", body = Accepted),
        (status = 400, description = "`invalid_event` naming the field, or a malformed body."),
        (status = 429, description = "`rate_limited`: too many batches."),
    ),
)]
async fn record(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    state
        .limits
        .check_analytics_batch(user.id)
        .map_err(|retry_after| AppError::TooManyRequests {
            message: "too many analytics batches; send fewer, larger ones",
            retry_after,
        })?;
    let events = parse_batch(&body, Utc::now())?;
    store::insert_analytics_events(&state.db, Some(user.id), &events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: events.len(),
        }),
    ))
}

fn invalid(message: String) -> AppError {
    AppError::bad_request("invalid_event", message)
}

/// The events of a batch, or a 400 naming the first field at fault.
fn parse_batch(body: &Value, now: DateTime<Utc>) -> Result<Vec<NewAnalyticsEvent>, AppError> {
    let Some(items) = body.as_array() else {
        return Err(invalid("the body must be a JSON array of events".into()));
    };
    if items.len() > MAX_EVENTS_PER_BATCH {
        return Err(invalid(format!(
            "a batch holds at most {MAX_EVENTS_PER_BATCH} events"
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_event(index, item, now))
        .collect()
}

fn parse_event(
    index: usize,
    item: &Value,
    now: DateTime<Utc>,
) -> Result<NewAnalyticsEvent, AppError> {
    let field = |name: &str| format!("events[{index}].{name}");
    let Some(object) = item.as_object() else {
        return Err(invalid(format!("events[{index}] must be an object")));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !matches!(key.as_str(), "name" | "properties" | "ts"))
    {
        return Err(invalid(format!("{} is not a known field", field(unknown))));
    }
    let name = match object.get("name").and_then(Value::as_str) {
        Some(name) if valid_name(name) => name,
        _ => {
            return Err(invalid(format!(
                "{} must be a string matching ^[a-z][a-z0-9_]{{0,63}}$",
                field("name")
            )))
        }
    };
    if SERVER_EVENTS.contains(&name) {
        return Err(invalid(format!(
            "{} `{name}` is reserved for the server's own events",
            field("name")
        )));
    }
    let properties = match object.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(properties)) => properties.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "{} must be an object",
                field("properties")
            )))
        }
    };
    let properties = Value::Object(properties).to_string();
    if properties.len() > MAX_PROPERTIES_BYTES {
        return Err(invalid(format!(
            "{} must be at most {MAX_PROPERTIES_BYTES} bytes as JSON",
            field("properties")
        )));
    }
    let ts = match object.get("ts") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => {
            let ts = DateTime::parse_from_rfc3339(text)
                .map_err(|_| invalid(format!("{} must be an RFC 3339 time", field("ts"))))?
                .with_timezone(&Utc);
            let oldest = now - Days::days(MAX_EVENT_AGE_DAYS);
            let newest = now + Days::minutes(MAX_CLOCK_SKEW_MINUTES);
            if ts < oldest || ts > newest {
                return Err(invalid(format!(
                    "{} must be within the last {MAX_EVENT_AGE_DAYS} days",
                    field("ts")
                )));
            }
            ts
        }
        Some(_) => return Err(invalid(format!("{} must be an RFC 3339 time", field("ts")))),
    };
    Ok(NewAnalyticsEvent {
        name: name.to_owned(),
        properties,
        ts: ts.timestamp_millis(),
    })
}

/// `^[a-z][a-z0-9_]{0,63}$`
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SummaryQuery {
    /// First day (`YYYY-MM-DD`, UTC); 29 days before `to` when absent.
    from: Option<NaiveDate>,
    /// Last day, included; today when absent. At most 366 days in all.
    to: Option<NaiveDate>,
}

/// Event counts per name per UTC day.
#[derive(Serialize, ToSchema)]
struct Summary {
    from: String,
    to: String,
    /// Only days with events, oldest first.
    days: Vec<DayCounts>,
}

#[derive(Serialize, ToSchema)]
struct DayCounts {
    /// `YYYY-MM-DD`.
    date: String,
    /// Events of each name that day.
    counts: BTreeMap<String, i64>,
}

/// Counts of analytics events per name per day.
///
/// Administrators only (the `admins` setting).
#[utoipa::path(
    get, path = "/api/analytics/summary", tag = "analytics",
    params(SummaryQuery),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The counts.", body = Summary),
        (status = 400, description = "`invalid_query`: bad dates, `from` after `to`, or too long a range."),
        (status = 403, description = "`admin_required`."),
    ),
)]
async fn summary(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Summary>, AppError> {
    let Query(query) = query.map_err(|_| {
        AppError::bad_request(
            "invalid_query",
            "from and to must be dates written YYYY-MM-DD",
        )
    })?;
    let (from, to) = day_range(
        Utc::now().date_naive(),
        query.from,
        query.to,
        MAX_SUMMARY_DAYS,
        "a summary",
    )?;
    let start = day_start_millis(from);
    let end = day_start_millis(to) + DAY_MILLIS;
    let counts = store::daily_analytics_counts(&state.db, start, end).await?;
    let mut days: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for count in counts {
        days.entry(count.day)
            .or_default()
            .insert(count.name, count.count);
    }
    let days = days
        .into_iter()
        .map(|(day, counts)| DayCounts {
            date: DateTime::from_timestamp_millis(day * DAY_MILLIS)
                .map(|at| at.date_naive().to_string())
                .unwrap_or_default(),
            counts,
        })
        .collect();
    Ok(Json(Summary {
        from: from.to_string(),
        to: to.to_string(),
        days,
    }))
}

fn day_start_millis(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map(|at| at.and_utc().timestamp_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for good in ["a", "upgrade_click", "step2_done", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Upgrade",
            "2fa",
            "_x",
            "a-b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_event_is_named_by_its_index_and_field() {
        let now = Utc::now();
        let message = |body: Value| match parse_batch(&body, now) {
            Err(AppError::BadRequest { message, .. }) => message,
            other => panic!("expected a 400: {other:?}"),
        };
        assert!(message(json!({})).contains("JSON array"));
        assert!(message(json!([{ "name": "ok" }, { "name": "Bad" }])).contains("events[1].name"));
        assert!(
            message(json!([{ "name": "ok", "properties": [1] }])).contains("events[0].properties")
        );
        assert!(message(json!([{ "name": "ok", "ts": "yesterday" }])).contains("events[0].ts"));
        assert!(message(json!([{ "name": "ok", "extra": 1 }])).contains("events[0].extra"));
        assert!(message(json!([{ "name": "turn_completed" }])).contains("reserved"));
        let big =
            json!([{ "name": "ok", "properties": { "x": "y".repeat(MAX_PROPERTIES_BYTES) } }]);
        assert!(message(big).contains("4096 bytes"));
        let many: Vec<Value> = (0..=MAX_EVENTS_PER_BATCH)
            .map(|_| json!({ "name": "ok" }))
            .collect();
        assert!(message(Value::Array(many)).contains("at most 50"));
        let old = (now - Days::days(8)).to_rfc3339();
        assert!(message(json!([{ "name": "ok", "ts": old }])).contains("last 7 days"));
    }

    #[test]
    fn a_good_batch_keeps_names_properties_and_times() {
        let now = Utc::now();
        let earlier = now - Days::hours(3);
        let events = parse_batch(
            &json!([
                { "name": "paywall_shown", "properties": { "plan": "pro" }, "ts": earlier.to_rfc3339() },
                { "name": "upgrade_click" },
            ]),
            now,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].name, "paywall_shown");
        assert_eq!(events[0].properties, r#"{"plan":"pro"}"#);
        assert_eq!(events[0].ts, earlier.timestamp_millis());
        assert_eq!(events[1].properties, "{}");
        assert_eq!(events[1].ts, now.timestamp_millis());
    }
}
