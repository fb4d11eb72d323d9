-- Plans and usage metering (issue 17).
--
-- user_plans: the plan a user is on (set by billing); no row means the
-- configured default plan (or the anonymous plan for guests). status is the
-- subscription's (active, trialing, past_due, canceled, ...); times in ms.
CREATE TABLE user_plans (
    user_id              TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    renews_at            INTEGER NULL,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    updated_at           INTEGER NOT NULL
);

-- usage_daily: what each user spent per UTC day (YYYY-MM-DD) and model,
-- added to in the same transaction as the reply it counts. Voice is kept
-- in milliseconds so short utterances add up exactly.
CREATE TABLE usage_daily (
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day               TEXT NOT NULL,
    model             TEXT NOT NULL,
    messages          INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    voice_ms_in       INTEGER NOT NULL DEFAULT 0,
    voice_ms_out      INTEGER NOT NULL DEFAULT 0,
    tool_calls        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, model)
);
-- The admin report reads by day across users.
CREATE INDEX usage_daily_by_day ON usage_daily (day, user_id);
