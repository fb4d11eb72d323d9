-- Daily activity streaks (seed 000), counted in the user's time zone (an
-- IANA name): the current run of days with a message, the longest, and the
-- last such day as YYYY-MM-DD in that zone.
ALTER TABLE users ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE users ADD COLUMN streak_current BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN streak_longest BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN streak_last_date TEXT;
