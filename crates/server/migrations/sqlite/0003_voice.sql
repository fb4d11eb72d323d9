-- Turn timings (seed 000): one row per reply of a voice-enabled turn, each
-- instant in epoch milliseconds (NULL when that stage did not happen, e.g.
-- no speech end for a typed message, no audio with TTS off).
CREATE TABLE turn_timings (
    reply_id         TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    transport        TEXT NOT NULL,
    speech_end_at    INTEGER,
    transcript_at    INTEGER,
    first_token_at   INTEGER,
    first_audio_at   INTEGER,
    turn_end_at      INTEGER NOT NULL,
    interrupted      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE INDEX turn_timings_by_conversation ON turn_timings (conversation_id, created_at);
