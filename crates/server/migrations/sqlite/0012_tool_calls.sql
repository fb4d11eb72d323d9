-- Tool calls of the agent loop (seed 001's tool execution flow), one row
-- per call the model made while writing reply `reply_id`. `start_seq` and
-- `end_seq` are the seqs of the call's `tool` events (`end_seq` is NULL
-- while it runs), so a client resuming from storage replays them in order;
-- the later turns' history sends each call and its result back to the
-- model in the order it made them (`round`, then `position`). `call_id`
-- is the provider's id, unique only within its round.
CREATE TABLE tool_calls (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reply_id        TEXT NOT NULL,
    round           INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    call_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- The arguments as the model wrote them (JSON text, maybe invalid).
    arguments       TEXT NOT NULL,
    start_seq       INTEGER NOT NULL,
    end_seq         INTEGER,
    -- JSON text of what the tool returned, or the error it failed with.
    result          TEXT,
    error_code      TEXT,
    error_message   TEXT,
    duration_ms     INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX tool_calls_by_seq ON tool_calls (conversation_id, start_seq);
CREATE INDEX tool_calls_by_reply ON tool_calls (conversation_id, reply_id, round, position);
