-- The voice coach's plan tools (seed 004): when a step was completed, NULL
-- while it is still to do. A plan's current step is its first one not
-- completed.
ALTER TABLE plan_steps ADD COLUMN completed_at INTEGER;

-- Full-text search over message text (the `search_conversations` tool),
-- with FTS5. Messages have text ids and FTS5 rows integer ones, so a small
-- table gives each message a stable integer: the implicit rowid of
-- `messages` could be renumbered by a VACUUM, an INTEGER PRIMARY KEY
-- cannot. The index is contentless (the text already lives in `messages`),
-- and `contentless_delete` lets the triggers remove a message's row.
CREATE TABLE message_search_rows (
    row        INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE message_search USING fts5(
    content,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO message_search_rows (message_id) SELECT id FROM messages ORDER BY created_at, id;
INSERT INTO message_search (rowid, content)
    SELECT r.row, m.content FROM message_search_rows r JOIN messages m ON m.id = r.message_id;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search_rows (message_id) VALUES (new.id);
    INSERT INTO message_search (rowid, content)
        SELECT row, new.content FROM message_search_rows WHERE message_id = new.id;
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF content ON messages BEGIN
    DELETE FROM message_search
        WHERE rowid = (SELECT row FROM message_search_rows WHERE message_id = old.id);
    INSERT INTO message_search (rowid, content)
        SELECT row, new.content FROM message_search_rows WHERE message_id = new.id;
END;

-- Also fired by the cascade when a conversation or its user is deleted.
CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    DELETE FROM message_search
        WHERE rowid = (SELECT row FROM message_search_rows WHERE message_id = old.id);
    DELETE FROM message_search_rows WHERE message_id = old.id;
END;
