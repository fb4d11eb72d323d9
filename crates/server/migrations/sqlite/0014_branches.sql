-- Branches (issue 16): an edit or a regenerated reply keeps the message it
-- replaces as a sibling. `parent_id` is the message a message follows (NULL
-- for a conversation's first messages); it may name a reply that is still
-- being written (a question sent while the previous reply streams), so it
-- has no foreign key. `active_leaf_id` is the last message of the path the
-- conversation shows and the model reads.
ALTER TABLE messages ADD COLUMN parent_id TEXT;
ALTER TABLE conversations ADD COLUMN active_leaf_id TEXT;
CREATE INDEX messages_by_parent ON messages (conversation_id, parent_id);

-- Existing conversations become one linear path in turn order (each reply
-- right after its question, as they were read before): every message's
-- parent is the message before it, and the last one is the active leaf.
CREATE TEMPORARY TABLE turn_positions AS
    SELECT m.id, m.conversation_id,
           CASE WHEN q.seq IS NOT NULL THEN 2 * q.seq + 1
                WHEN m.sender = 'user' THEN 2 * m.seq
                ELSE 2 * m.seq + 1 END AS position
    FROM messages m
    LEFT JOIN messages q
      ON q.conversation_id = m.conversation_id AND q.reply_id = m.id AND q.sender = 'user';
CREATE INDEX turn_positions_by_conversation ON turn_positions (conversation_id, position);

UPDATE messages SET parent_id = (
    SELECT before.id FROM turn_positions me, turn_positions before
    WHERE me.id = messages.id AND before.conversation_id = me.conversation_id
      AND before.position < me.position
    ORDER BY before.position DESC LIMIT 1
);
UPDATE conversations SET active_leaf_id = (
    SELECT id FROM turn_positions WHERE conversation_id = conversations.id
    ORDER BY position DESC LIMIT 1
);
DROP TABLE turn_positions;
