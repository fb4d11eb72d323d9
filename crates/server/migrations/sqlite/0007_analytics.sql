-- Product analytics (seed 000): events the UI reports (paywall nudges,
-- upgrade clicks, ...) and the server's own (turn_completed, ...). ts is
-- when it happened (the client's clock, bounded), received_at when stored.
CREATE TABLE analytics_events (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    properties  TEXT NOT NULL DEFAULT '{}',
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX analytics_events_by_time ON analytics_events (ts, name);
