//! Turn timings (seed 000): one row per turn, its moments in epoch
//! milliseconds, deleted with its conversation. Two writers may fill one
//! row: the turn service (every turn: received, stored, first text, end)
//! and a voice pipeline (speech end, transcript, first audio, end of
//! playback), in either order, so a write merges into the row instead of
//! replacing it. The clocks that take them and the metrics they feed live
//! in `turn::clock` and `voice::timings`.

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
    /// `text` for a typed turn; a voice pipeline names its own (`voice`, `chat`).
    pub transport: String,
    /// When the user message reached the turn service (text turns).
    pub received_at: Option<i64>,
    /// When the user message was stored and acknowledged (text turns).
    pub stored_at: Option<i64>,
    pub speech_end_at: Option<i64>,
    pub transcript_at: Option<i64>,
    pub first_token_at: Option<i64>,
    pub first_audio_at: Option<i64>,
    pub turn_end_at: i64,
    pub interrupted: bool,
}

/// The transport the turn service records; a voice pipeline's name wins
/// over it when both write one turn's row.
pub const TEXT_TRANSPORT: &str = "text";

/// Store the timing of a turn of `conversation_id`, merged into any earlier
/// row of the same reply: a moment this write lacks keeps its stored value,
/// the earliest first token and the latest end win, and a voice transport
/// wins over [`TEXT_TRANSPORT`]. A deleted conversation refuses it
/// (foreign key).
pub async fn insert_turn_timing(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    timing: &TurnTiming,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO turn_timings
           (reply_id, conversation_id, transport, received_at, stored_at, speech_end_at,
            transcript_at, first_token_at, first_audio_at, turn_end_at, interrupted, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (reply_id) DO UPDATE SET
           transport = CASE WHEN excluded.transport = $13
             THEN turn_timings.transport ELSE excluded.transport END,
           received_at = COALESCE(excluded.received_at, turn_timings.received_at),
           stored_at = COALESCE(excluded.stored_at, turn_timings.stored_at),
           speech_end_at = COALESCE(excluded.speech_end_at, turn_timings.speech_end_at),
           transcript_at = COALESCE(excluded.transcript_at, turn_timings.transcript_at),
           first_token_at = CASE
             WHEN turn_timings.first_token_at IS NULL
               OR excluded.first_token_at < turn_timings.first_token_at
             THEN COALESCE(excluded.first_token_at, turn_timings.first_token_at)
             ELSE turn_timings.first_token_at END,
           first_audio_at = COALESCE(excluded.first_audio_at, turn_timings.first_audio_at),
           turn_end_at = CASE WHEN excluded.turn_end_at > turn_timings.turn_end_at
             THEN excluded.turn_end_at ELSE turn_timings.turn_end_at END,
           interrupted = CASE WHEN excluded.interrupted > turn_timings.interrupted
             THEN excluded.interrupted ELSE turn_timings.interrupted END",
    )
    .bind(timing.reply_id.to_string())
    .bind(conversation_id.to_string())
    .bind(&timing.transport)
    .bind(timing.received_at)
    .bind(timing.stored_at)
    .bind(timing.speech_end_at)
    .bind(timing.transcript_at)
    .bind(timing.first_token_at)
    .bind(timing.first_audio_at)
    .bind(timing.turn_end_at)
    .bind(i64::from(timing.interrupted))
    .bind(now_millis())
    .bind(TEXT_TRANSPORT)
    .execute(db)
    .await?;
    Ok(())
}

fn timing_from_row(row: &AnyRow) -> Result<TurnTiming, StoreError> {
    Ok(TurnTiming {
        reply_id: parse_id(row.try_get("reply_id")?)?,
        transport: row.try_get("transport")?,
        received_at: row.try_get("received_at")?,
        stored_at: row.try_get("stored_at")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, testing};

    fn timing(reply_id: Uuid, transport: &str, turn_end_at: i64) -> TurnTiming {
        TurnTiming {
            reply_id,
            transport: transport.into(),
            received_at: None,
            stored_at: None,
            speech_end_at: None,
            transcript_at: None,
            first_token_at: None,
            first_audio_at: None,
            turn_end_at,
            interrupted: false,
        }
    }

    #[tokio::test]
    async fn the_turn_service_and_a_voice_pipeline_fill_one_row_in_either_order() {
        let (_keep, pool, user) = testing::database().await;
        let id = Uuid::now_v7();
        store::create_conversation(&pool, id, user, "t")
            .await
            .unwrap();
        let text = |reply| TurnTiming {
            received_at: Some(100),
            stored_at: Some(110),
            first_token_at: Some(200),
            ..timing(reply, TEXT_TRANSPORT, 300)
        };
        let voice = |reply| TurnTiming {
            speech_end_at: Some(50),
            transcript_at: Some(90),
            first_token_at: Some(210),
            first_audio_at: Some(250),
            interrupted: true,
            ..timing(reply, "voice", 900)
        };
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        insert_turn_timing(&pool, id, &text(first)).await.unwrap();
        insert_turn_timing(&pool, id, &voice(first)).await.unwrap();
        insert_turn_timing(&pool, id, &voice(second)).await.unwrap();
        insert_turn_timing(&pool, id, &text(second)).await.unwrap();

        let rows = list_turn_timings(&pool, id).await.unwrap();
        assert_eq!(rows.len(), 2, "one row per turn: {rows:?}");
        for row in rows {
            let merged = TurnTiming {
                reply_id: row.reply_id,
                transport: "voice".into(),
                received_at: Some(100),
                stored_at: Some(110),
                speech_end_at: Some(50),
                transcript_at: Some(90),
                first_token_at: Some(200),
                first_audio_at: Some(250),
                turn_end_at: 900,
                interrupted: true,
            };
            assert_eq!(row, merged);
        }
    }
}
