-- The voice coach's plan tools (seed 004): when a step was completed, NULL
-- while it is still to do. A plan's current step is its first one not
-- completed.
ALTER TABLE plan_steps ADD COLUMN completed_at BIGINT;

-- Full-text search over message text (the `search_conversations` tool).
-- The `simple` configuration (no stemming, no stop words) works for every
-- language, as SQLite's unicode61 tokenizer does; the search query repeats
-- this exact expression so the planner uses the index.
CREATE INDEX messages_search ON messages USING GIN (to_tsvector('simple', content));
