-- Read-only share links (seed 000: "sharing"): a snapshot of a
-- conversation's messages when it was shared, behind an unguessable id.
-- One live link per conversation: sharing again replaces it, revoking
-- deletes it, and deleting the conversation deletes it too.
CREATE TABLE shares (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL UNIQUE REFERENCES conversations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    -- JSON array of {sender, content, created_at}, in turn order.
    messages        TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
