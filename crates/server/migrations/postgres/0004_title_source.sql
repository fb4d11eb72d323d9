-- Where a conversation's title came from: `user` (given or renamed; also
-- every conversation from before this migration), `message` (the first
-- words of the first message), `pending` (a title is being generated) or
-- `model` (generated after the first reply). Only `message` titles are
-- replaced by a generated one, so a title the user set is never overwritten.
ALTER TABLE conversations ADD COLUMN title_source TEXT NOT NULL DEFAULT 'user';
