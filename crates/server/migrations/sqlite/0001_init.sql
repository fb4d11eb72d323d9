-- Users: signed-in (email + argon2 hash) or anonymous (neither).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT UNIQUE,
    password_hash TEXT,
    full_name     TEXT,
    is_anonymous  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- last_seq: the seq of the newest event of the conversation that is stored,
-- so event numbering continues across restarts.
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT NOT NULL DEFAULT '',
    last_seq   INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_by_user ON conversations (user_id, updated_at DESC, id DESC);

-- seq: the seq of the event that carried the message (ack for user
-- messages, the final message event for replies).
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender          TEXT NOT NULL CHECK (sender IN ('user', 'assistant', 'tool')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('complete', 'interrupted', 'error')),
    seq             INTEGER NOT NULL,
    client_id       TEXT,
    reply_id        TEXT,
    error_code      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
