//! Branches: every message names the message it follows (`parent_id`), so
//! an edited question or a regenerated reply is a sibling of the one it
//! replaces, and a conversation is a tree. Its active leaf picks the path
//! that is shown and that the model reads: from the leaf up through the
//! parents to a first message.
//!
//! A leaf or parent may name a reply that was never stored (still being
//! written, or lost with a crashed write); the path then continues from the
//! question that reply answers, found by its `reply_id`.

use std::collections::HashMap;

use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::{parse_id, Message, StoreError};

/// Longest path read back from a leaf: deeper messages are left out (and a
/// corrupt parent cycle ends here).
pub const MAX_PATH_MESSAGES: u32 = 10_000;

/// The path up to a leaf: the recursive walk shared by [`path_page`] and
/// [`path_before`], binding `$1` conversation, `$2` leaf, `$3` most steps.
const PATH_CTE: &str = "WITH RECURSIVE path(id, parent_id, depth) AS (
        SELECT id, parent_id, CAST(0 AS BIGINT) FROM messages
        WHERE conversation_id = $1
          AND (id = $2 OR (sender = 'user' AND reply_id = $2
               AND NOT EXISTS (SELECT 1 FROM messages gone WHERE gone.id = $2)))
        UNION ALL
        SELECT m.id, m.parent_id, p.depth + 1 FROM path p
        JOIN messages m ON m.conversation_id = $1
         AND (m.id = p.parent_id OR (m.sender = 'user' AND m.reply_id = p.parent_id
              AND NOT EXISTS (SELECT 1 FROM messages gone WHERE gone.id = p.parent_id)))
        WHERE p.depth < $3
    ),
    sized AS (SELECT id, depth, COUNT(*) OVER () AS length FROM path)";

/// One page of a conversation's active path.
#[derive(Debug)]
pub struct PathPage {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// The path position (0 = the first message) of the first one: pass it
    /// as `before` for the page before this one.
    pub first_position: Option<u64>,
}

/// The conversation's active leaf, if it has one.
pub async fn active_leaf(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let row = sqlx::query("SELECT active_leaf_id FROM conversations WHERE id = $1")
        .bind(conversation_id.to_string())
        .fetch_optional(db)
        .await?;
    let leaf: Option<String> = match row {
        Some(row) => row.try_get("active_leaf_id")?,
        None => None,
    };
    leaf.as_deref().map(parse_id).transpose()
}

/// Make `leaf` the conversation's active leaf.
pub async fn set_active_leaf(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    leaf: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE conversations SET active_leaf_id = $1 WHERE id = $2")
        .bind(leaf.to_string())
        .bind(conversation_id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The newest `limit` messages of the path ending at `leaf` whose position
/// is before `before` (all when `None`), oldest first.
pub async fn path_page(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    leaf: Uuid,
    before: Option<u64>,
    limit: u32,
) -> Result<PathPage, StoreError> {
    let before = before.map_or(i64::MAX, |position| {
        i64::try_from(position).unwrap_or(i64::MAX)
    });
    let sql = format!(
        "{PATH_CTE}
         SELECT m.*, sized.length - 1 - sized.depth AS position
         FROM sized JOIN messages m ON m.id = sized.id
         WHERE sized.length - 1 - sized.depth < $4
         ORDER BY sized.depth LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(conversation_id.to_string())
        .bind(leaf.to_string())
        .bind(i64::from(MAX_PATH_MESSAGES))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(db)
        .await?;
    let mut messages = Vec::with_capacity(rows.len());
    let mut first_position = None;
    for row in rows.iter().rev() {
        let position: i64 = row.try_get("position")?;
        first_position.get_or_insert(u64::try_from(position).unwrap_or_default());
        messages.push(super::messages::message_from_row(row)?);
    }
    Ok(PathPage {
        messages,
        first_position,
    })
}

/// [`path_page`] of the conversation's active path (empty without one).
pub async fn active_path_page(
    db: &super::Pool,
    conversation_id: Uuid,
    before: Option<u64>,
    limit: u32,
) -> Result<PathPage, StoreError> {
    match active_leaf(db, conversation_id).await? {
        Some(leaf) => path_page(db, conversation_id, leaf, before, limit).await,
        None => Ok(PathPage {
            messages: Vec::new(),
            first_position: None,
        }),
    }
}

/// The last `limit` messages of the path ending at `leaf`, oldest first:
/// the history a reply to `leaf` is generated from.
pub async fn path_before(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    leaf: Uuid,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let sql = format!(
        "{PATH_CTE}
         SELECT m.* FROM sized JOIN messages m ON m.id = sized.id ORDER BY sized.depth DESC"
    );
    let rows = sqlx::query(&sql)
        .bind(conversation_id.to_string())
        .bind(leaf.to_string())
        .bind(i64::from(limit.saturating_sub(1)))
        .fetch_all(db)
        .await?;
    rows.iter().map(super::messages::message_from_row).collect()
}

/// Whether `message_id` is on the path ending at `leaf` (the leaf itself
/// included).
pub async fn path_contains(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    leaf: Uuid,
    message_id: Uuid,
) -> Result<bool, StoreError> {
    let sql = format!("{PATH_CTE} SELECT 1 FROM path WHERE id = $4 LIMIT 1");
    let found = sqlx::query(&sql)
        .bind(conversation_id.to_string())
        .bind(leaf.to_string())
        .bind(i64::from(MAX_PATH_MESSAGES))
        .bind(message_id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// The children of each of `parents` (`None`: the first messages), oldest
/// first: the alternatives a message on a path can switch to.
pub async fn children_of(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    parents: &[Option<Uuid>],
) -> Result<HashMap<Option<Uuid>, Vec<Uuid>>, StoreError> {
    let ids: Vec<Uuid> = parents.iter().flatten().copied().collect();
    let mut conditions = Vec::new();
    if parents.contains(&None) {
        conditions.push("parent_id IS NULL".to_owned());
    }
    if !ids.is_empty() {
        // One placeholder per id ($2, $3, ...): the `Any` driver has no arrays.
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        conditions.push(format!("parent_id IN ({})", placeholders.join(", ")));
    }
    let mut children: HashMap<Option<Uuid>, Vec<Uuid>> = HashMap::new();
    if conditions.is_empty() {
        return Ok(children);
    }
    let sql = format!(
        "SELECT id, parent_id FROM messages
         WHERE conversation_id = $1 AND sender != 'tool' AND ({})
         ORDER BY seq",
        conditions.join(" OR ")
    );
    let mut query = sqlx::query(&sql).bind(conversation_id.to_string());
    for id in &ids {
        query = query.bind(id.to_string());
    }
    for row in query.fetch_all(db).await? {
        let parent: Option<String> = row.try_get("parent_id")?;
        let parent = parent.as_deref().map(parse_id).transpose()?;
        children
            .entry(parent)
            .or_default()
            .push(parse_id(row.try_get("id")?)?);
    }
    Ok(children)
}

/// The leaf that shows `message_id`'s branch: its newest descendant (itself
/// when it has none); for a question whose reply is still being written,
/// that reply. `None` when the message is not in the conversation.
pub async fn newest_leaf_under(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let row = sqlx::query(
        "WITH RECURSIVE below(id, depth) AS (
            SELECT id, CAST(0 AS BIGINT) FROM messages WHERE conversation_id = $1 AND id = $2
            UNION ALL
            SELECT m.id, b.depth + 1 FROM below b
            JOIN messages m ON m.conversation_id = $1 AND m.parent_id = b.id
            WHERE b.depth < $3
         )
         SELECT m.id, m.sender, m.reply_id FROM below JOIN messages m ON m.id = below.id
         ORDER BY m.seq DESC LIMIT 1",
    )
    .bind(conversation_id.to_string())
    .bind(message_id.to_string())
    .bind(i64::from(MAX_PATH_MESSAGES))
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sender: String = row.try_get("sender")?;
    let reply_id: Option<String> = row.try_get("reply_id")?;
    let leaf = match reply_id {
        Some(reply_id) if sender == "user" => reply_id,
        _ => row.try_get("id")?,
    };
    parse_id(&leaf).map(Some)
}

/// A reply is being regenerated: `reply_id` becomes the newest reply of
/// `question_id` (so crash repair finds it unanswered) and the active leaf.
pub async fn start_regeneration(
    conn: &mut sqlx::AnyConnection,
    conversation_id: Uuid,
    question_id: Uuid,
    reply_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET reply_id = $1 WHERE conversation_id = $2 AND id = $3")
        .bind(reply_id.to_string())
        .bind(conversation_id.to_string())
        .bind(question_id.to_string())
        .execute(&mut *conn)
        .await?;
    set_active_leaf(&mut *conn, conversation_id, reply_id).await
}

#[cfg(test)]
mod tests {
    use colloquy_protocol::{MessageStatus, Sender};

    use super::*;
    use crate::store::{self, testing, Backend, NewMessage, Parent, ScratchDatabase};

    /// The part of the branches migration that makes existing
    /// conversations one path, for the backend under test.
    fn backfill() -> &'static str {
        let migration = match ScratchDatabase::backend_from_env().unwrap() {
            Backend::Sqlite => include_str!("../../migrations/sqlite/0014_branches.sql"),
            Backend::Postgres => include_str!("../../migrations/postgres/0009_branches.sql"),
        };
        let start = migration.find("CREATE TEMPORARY TABLE").unwrap();
        &migration[start..]
    }

    /// A message stored as before branches: no parent, no active leaf.
    fn unbranched(
        conversation_id: Uuid,
        sender: Sender,
        seq: u64,
        reply_id: Option<Uuid>,
    ) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            conversation_id,
            sender,
            content: format!("{} {seq}", sender.as_str()),
            status: MessageStatus::Complete,
            seq,
            client_id: None,
            reply_id,
            error_code: None,
            parent: Parent::Message(None),
            activate: None,
        }
    }

    #[tokio::test]
    async fn existing_messages_become_one_path_in_turn_order() {
        let (_keep, pool, user) = testing::database().await;
        let conversation = Uuid::now_v7();
        store::create_conversation(&pool, conversation, user, "")
            .await
            .unwrap();
        // The second question was sent while the first reply streamed: by
        // seq it comes before that reply, in turn order after it.
        let (r1, r2) = (Uuid::now_v7(), Uuid::now_v7());
        let q1 = unbranched(conversation, Sender::User, 1, Some(r1));
        let q2 = unbranched(conversation, Sender::User, 2, Some(r2));
        let mut a1 = unbranched(conversation, Sender::Assistant, 3, None);
        a1.id = r1;
        let mut a2 = unbranched(conversation, Sender::Assistant, 4, None);
        a2.id = r2;
        for message in [q1.clone(), q2.clone(), a1, a2] {
            store::insert_message(&pool, message).await.unwrap();
        }
        assert_eq!(active_leaf(&pool, conversation).await.unwrap(), None);

        sqlx::raw_sql(backfill()).execute(&pool).await.unwrap();

        assert_eq!(active_leaf(&pool, conversation).await.unwrap(), Some(r2));
        let page = active_path_page(&pool, conversation, None, 10)
            .await
            .unwrap();
        let ids: Vec<Uuid> = page.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [q1.id, r1, q2.id, r2]);
        let parents: Vec<Option<Uuid>> = page.messages.iter().map(|m| m.parent_id).collect();
        assert_eq!(parents, [None, Some(q1.id), Some(r1), Some(q2.id)]);
        assert_eq!(page.first_position, Some(0));
        let older = active_path_page(&pool, conversation, Some(2), 1)
            .await
            .unwrap();
        assert_eq!(older.messages[0].id, r1);
        assert_eq!(older.first_position, Some(1));
    }

    #[tokio::test]
    async fn a_path_ending_at_an_unwritten_reply_ends_at_its_question() {
        let (_keep, pool, user) = testing::database().await;
        let conversation = Uuid::now_v7();
        store::create_conversation(&pool, conversation, user, "")
            .await
            .unwrap();
        let (r1, r2, r2b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut q1 = unbranched(conversation, Sender::User, 1, Some(r1));
        q1.parent = Parent::ActiveLeaf;
        q1.activate = Some(r1);
        store::insert_message(&pool, q1.clone()).await.unwrap();
        // The first reply was lost (its write failed): the next question
        // still names it as parent.
        let mut q2 = unbranched(conversation, Sender::User, 3, Some(r2));
        q2.parent = Parent::ActiveLeaf;
        q2.activate = Some(r2);
        let q2 = store::insert_message(&pool, q2).await.unwrap();
        assert_eq!(q2.parent_id, Some(r1));

        let path = active_path_page(&pool, conversation, None, 10)
            .await
            .unwrap();
        let ids: Vec<Uuid> = path.messages.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            [q1.id, q2.id],
            "the reply being written is not stored yet"
        );
        let history = path_before(&pool, conversation, q2.id, 1).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].id, q2.id);

        let mut conn = pool.acquire().await.unwrap();
        start_regeneration(&mut conn, conversation, q2.id, r2b)
            .await
            .unwrap();
        drop(conn);
        let mut answer = unbranched(conversation, Sender::Assistant, 4, None);
        answer.id = r2b;
        answer.parent = Parent::Message(Some(q2.id));
        store::insert_message(&pool, answer).await.unwrap();
        let children = children_of(&pool, conversation, &[Some(q2.id), None])
            .await
            .unwrap();
        assert_eq!(children[&Some(q2.id)], [r2b]);
        assert_eq!(children[&None], [q1.id]);
        assert_eq!(
            newest_leaf_under(&pool, conversation, q2.id).await.unwrap(),
            Some(r2b)
        );
        assert_eq!(
            newest_leaf_under(&pool, conversation, Uuid::now_v7())
                .await
                .unwrap(),
            None
        );
    }
}
