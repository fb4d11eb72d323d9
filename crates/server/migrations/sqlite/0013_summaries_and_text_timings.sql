-- A conversation's summary (issue 16): one per conversation, covering its
-- messages through `through_seq` (the message `through_message_id`). It is
-- written by `POST /api/conversations/{id}/summary` and by the rolling
-- summary that stands in for the turns the prompt's token budget trims.
CREATE TABLE conversation_summaries (
    conversation_id    TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    summary            TEXT NOT NULL,
    through_message_id TEXT NOT NULL,
    through_seq        INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Text turns record timings too: when the user message reached the turn
-- service and when it was stored and acknowledged (epoch milliseconds).
ALTER TABLE turn_timings ADD COLUMN received_at INTEGER;
ALTER TABLE turn_timings ADD COLUMN stored_at INTEGER;
