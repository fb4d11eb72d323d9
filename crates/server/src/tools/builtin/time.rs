//! `get_current_time`: the date and time now in an IANA time zone
//! (`Asia/Tokyo`), from the server's clock and chrono-tz's zone database.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use colloquy_ai::ToolDefinition;
use serde_json::{json, Value};

use crate::tools::{Tool, ToolContext, ToolFailure};

pub struct CurrentTime;

#[async_trait]
impl Tool for CurrentTime {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "get_current_time".into(),
            description: "The current date, time and weekday in a time zone. \
                          Use it whenever the answer depends on today's date or the time."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "description": "IANA time zone name such as \"Asia/Tokyo\" or \"Europe/Paris\"; UTC when omitted",
                    },
                },
                "additionalProperties": false,
            }),
        }
    }

    async fn call(&self, _: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let name = arguments["timezone"].as_str().unwrap_or("UTC");
        time_in(name, Utc::now())
    }
}

fn time_in(name: &str, now: chrono::DateTime<Utc>) -> Result<Value, ToolFailure> {
    let zone = Tz::from_str(name).map_err(|_| {
        ToolFailure::new(
            "unknown_timezone",
            format!("{name:?} is not an IANA time zone name (such as \"Asia/Tokyo\")."),
        )
    })?;
    let local = now.with_timezone(&zone);
    Ok(json!({
        "timezone": zone.name(),
        "datetime": local.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "date": local.format("%Y-%m-%d").to_string(),
        "time": local.format("%H:%M:%S").to_string(),
        "weekday": local.format("%A").to_string(),
        "utc_offset": local.format("%:z").to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_time_is_given_in_the_named_zone() {
        let now = Utc.with_ymd_and_hms(2025, 1, 31, 20, 30, 0).unwrap();
        let tokyo = time_in("Asia/Tokyo", now).unwrap();
        assert_eq!(tokyo["datetime"], "2025-02-01T05:30:00+09:00");
        assert_eq!(tokyo["weekday"], "Saturday");
        assert_eq!(tokyo["utc_offset"], "+09:00");
        assert_eq!(time_in("UTC", now).unwrap()["time"], "20:30:00");
    }

    #[test]
    fn an_unknown_zone_is_a_clear_error() {
        let failure = time_in("Mars/Olympus", Utc::now()).unwrap_err();
        assert_eq!(failure.code, "unknown_timezone");
    }
}
