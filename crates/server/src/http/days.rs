//! The `from`/`to` day range of the daily reports (usage, analytics):
//! defaulted to the 30 days up to today, checked for order and length.

use chrono::{Days, NaiveDate};

use crate::error::AppError;

/// The days `from..=to`: `to` defaults to `today`, `from` to 29 days
/// before `to`; `from` after `to`, or more than `max_days` days, is a 400
/// naming `report` (e.g. "a summary").
pub(super) fn day_range(
    today: NaiveDate,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    max_days: u64,
    report: &str,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let to = to.unwrap_or(today);
    // Checked: a client may name a date at the edge of what chrono holds.
    let from = from.unwrap_or_else(|| to.checked_sub_days(Days::new(29)).unwrap_or(to));
    if from > to {
        return Err(AppError::bad_request(
            "invalid_query",
            "from must not be after to",
        ));
    }
    if to.signed_duration_since(from).num_days() >= i64::try_from(max_days).unwrap_or(i64::MAX) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("{report} covers at most {max_days} days"),
        ));
    }
    Ok((from, to))
}
