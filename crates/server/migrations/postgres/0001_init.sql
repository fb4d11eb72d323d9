-- The PostgreSQL schema: the same tables, columns and meaning as the SQLite
-- migrations 0001-0006 (ids as hyphenated UUID text, times as Unix
-- milliseconds, flags as 0/1), so one set of queries serves both backends.
-- New migrations are added to both folders.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT UNIQUE,
    password_hash TEXT,
    full_name     TEXT,
    is_anonymous  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    -- A JSON object (goals, preferences, ...) the coach reads.
    user_data     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX plans_by_user ON plans (user_id, updated_at DESC, id DESC);
CREATE UNIQUE INDEX plans_id_user ON plans (id, user_id);

CREATE TABLE plan_steps (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    "order"     BIGINT NOT NULL CHECK ("order" >= 1),
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    icon        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    FOREIGN KEY (plan_id, user_id) REFERENCES plans (id, user_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX plan_steps_by_plan ON plan_steps (plan_id, "order");

-- last_seq: the seq of the newest stored event; seq_reserved: the range a
-- streaming reply reserved ahead of its unstored deltas (crash consistency).
CREATE TABLE conversations (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title        TEXT NOT NULL DEFAULT '',
    last_seq     BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    seq_reserved BIGINT NOT NULL DEFAULT 0,
    step_id      TEXT REFERENCES plan_steps(id) ON DELETE SET NULL
);
CREATE INDEX conversations_by_user ON conversations (user_id, updated_at DESC, id DESC);
CREATE INDEX conversations_by_step ON conversations (user_id, step_id, updated_at DESC)
    WHERE step_id IS NOT NULL;

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender          TEXT NOT NULL CHECK (sender IN ('user', 'assistant', 'tool')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('complete', 'interrupted', 'error')),
    seq             BIGINT NOT NULL,
    client_id       TEXT,
    reply_id        TEXT,
    error_code      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX messages_by_reply ON messages (conversation_id, reply_id) WHERE reply_id IS NOT NULL;

CREATE TABLE turn_timings (
    reply_id         TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    transport        TEXT NOT NULL,
    speech_end_at    BIGINT,
    transcript_at    BIGINT,
    first_token_at   BIGINT,
    first_audio_at   BIGINT,
    turn_end_at      BIGINT NOT NULL,
    interrupted      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);
CREATE INDEX turn_timings_by_conversation ON turn_timings (conversation_id, created_at);

CREATE TABLE reply_checkpoints (
    reply_id        TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    content         TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
