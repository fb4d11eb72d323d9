-- Crash consistency of event numbering. Deltas are published without being
-- stored; before one is sent under a seq beyond seq_reserved, the reply
-- task reserves a range ahead durably. After a crash, numbering resumes
-- past every seq that may have reached a client, never below it.
ALTER TABLE conversations ADD COLUMN seq_reserved INTEGER NOT NULL DEFAULT 0;

-- The text of a reply still streaming, saved as it grows, so the reply
-- repaired after a crash keeps what listeners already saw. Deleted when the
-- reply is stored.
CREATE TABLE reply_checkpoints (
    reply_id        TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    content         TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);
