-- Conversations are now stored with their first message. Before, opening a
-- socket (or a voice call) stored one at once, so pressing the mic or
-- having a text refused left empty rows behind; this drops them: nothing
-- was said in them, and untitled ones were never shown. Titled ones without
-- a step were named on purpose (created or renamed over HTTP) and stay.
DELETE FROM conversations
WHERE last_seq = 0
  AND (title = '' OR step_id IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.conversation_id = conversations.id);
