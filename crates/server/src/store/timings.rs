//! Turn timings (seed 000): one row per voice turn, its moments in epoch
//! milliseconds, deleted with its conversation. The clocks that take them
//! and the metrics they feed live in `voice::timings`.

use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{now_millis, parse_id, StoreError};

/// A stored turn timing, instants in epoch milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TurnTiming {
    pub reply_id: Uuid,
    pub transport: String,
    pub speech_end_at: Option<i64>,
    pub transcript_at: Option<i64>,
    pub first_token_at: Option<i64>,
    pub first_audio_at: Option<i64>,
    pub turn_end_at: i64,
    pub interrupted: bool,
}

/// Store the timing of a turn of `conversation_id`, replacing any earlier
/// one of the same reply. A deleted conversation refuses it (foreign key).
pub async fn insert_turn_timing(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    timing: &TurnTiming,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO turn_timings
           (reply_id, conversation_id, transport, speech_end_at, transcript_at, first_token_at,
            first_audio_at, turn_end_at, interrupted, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (reply_id) DO UPDATE SET
           conversation_id = excluded.conversation_id, transport = excluded.transport,
           speech_end_at = excluded.speech_end_at, transcript_at = excluded.transcript_at,
           first_token_at = excluded.first_token_at, first_audio_at = excluded.first_audio_at,
           turn_end_at = excluded.turn_end_at, interrupted = excluded.interrupted,
           created_at = excluded.created_at",
    )
    .bind(timing.reply_id.to_string())
    .bind(conversation_id.to_string())
    .bind(&timing.transport)
    .bind(timing.speech_end_at)
    .bind(timing.transcript_at)
    .bind(timing.first_token_at)
    .bind(timing.first_audio_at)
    .bind(timing.turn_end_at)
    .bind(i64::from(timing.interrupted))
    .bind(now_millis())
    .execute(db)
    .await?;
    Ok(())
}

fn timing_from_row(row: &AnyRow) -> Result<TurnTiming, StoreError> {
    Ok(TurnTiming {
        reply_id: parse_id(row.try_get("reply_id")?)?,
        transport: row.try_get("transport")?,
        speech_end_at: row.try_get("speech_end_at")?,
        transcript_at: row.try_get("transcript_at")?,
        first_token_at: row.try_get("first_token_at")?,
        first_audio_at: row.try_get("first_audio_at")?,
        turn_end_at: row.try_get("turn_end_at")?,
        interrupted: row.try_get::<i64, _>("interrupted")? != 0,
    })
}

/// The timings of a conversation's turns, oldest first.
pub async fn list_turn_timings(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Vec<TurnTiming>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM turn_timings WHERE conversation_id = $1 ORDER BY created_at, reply_id",
    )
    .bind(conversation_id.to_string())
    .fetch_all(db)
    .await?;
    rows.iter().map(timing_from_row).collect()
}
