-- Cluster mode looks for recent questions still waiting for their reply
-- (a node that died mid-reply) every few seconds: by time, not by scan.
CREATE INDEX messages_questions_by_time ON messages (created_at) WHERE sender = 'user' AND reply_id IS NOT NULL;
