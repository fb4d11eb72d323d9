-- A conversation is read in turn order (each reply right after its own
-- question), which finds a reply's question by its reply_id.
CREATE INDEX messages_by_reply ON messages (conversation_id, reply_id) WHERE reply_id IS NOT NULL;
