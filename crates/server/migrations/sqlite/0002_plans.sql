-- Coaching data (seed 004): a free-form profile per user, and plans (the
-- seed's "impacts") made of ordered steps.

-- user_data: a JSON object (goals, preferences, ...) the coach reads.
ALTER TABLE users ADD COLUMN user_data TEXT NOT NULL DEFAULT '{}';

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX plans_by_user ON plans (user_id, updated_at DESC, id DESC);
-- The parent key of plan_steps' (plan_id, user_id) foreign key.
CREATE UNIQUE INDEX plans_id_user ON plans (id, user_id);

-- user_id repeats the plan's owner so a step's ownership is checkable on its
-- own (seed 004); the composite foreign key keeps the copy equal to the
-- plan's owner, even if a plan ever changes hands.
-- "order" is the 1-based position in the plan. It is deliberately not unique:
-- the store keeps each plan's orders dense (1..n) inside a transaction, and a
-- unique index would fail halfway through the shifts that insert and move do.
CREATE TABLE plan_steps (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    "order"     INTEGER NOT NULL CHECK ("order" >= 1),
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    icon        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    FOREIGN KEY (plan_id, user_id) REFERENCES plans (id, user_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX plan_steps_by_plan ON plan_steps (plan_id, "order");
