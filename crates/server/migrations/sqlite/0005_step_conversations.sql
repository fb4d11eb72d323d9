-- The voice coach's memory: a voice session on a plan step continues that
-- step's latest voice conversation instead of starting a new one per call.
ALTER TABLE conversations ADD COLUMN step_id TEXT REFERENCES plan_steps(id) ON DELETE SET NULL;
CREATE INDEX conversations_by_step ON conversations (user_id, step_id, updated_at DESC)
    WHERE step_id IS NOT NULL;
