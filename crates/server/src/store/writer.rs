//! Group commit for messages. Every conversation's inserts queue to one
//! writer task, which commits whatever has gathered in a single transaction
//! (one savepoint per message, so one bad row fails alone). With SQLite's
//! `synchronous=full` each commit is an fsync; sharing it across concurrent
//! turns keeps "stored before the ack" cheap under load, while a lone
//! message still commits at once.

use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::{insert_message_in, Message, NewMessage, Pool, StoreError};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;
/// Inserts allowed to wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

struct Job {
    message: NewMessage,
    done: oneshot::Sender<Result<Message, StoreError>>,
}

/// Handle to the writer task; the task ends when the last handle is dropped.
#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Start the writer task on `pool`.
    pub fn spawn(pool: Pool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { jobs }
    }

    /// Store `message` durably (committed when this returns `Ok`).
    pub async fn insert(&self, message: NewMessage) -> Result<Message, StoreError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { message, done })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        result.await.map_err(|_| StoreError::Unavailable)?
    }
}

async fn run(pool: Pool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages = batch.iter().map(|job| job.message.clone()).collect();
        match commit(&pool, messages).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.done.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, size = batch.len(), "message batch failed to commit");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Unavailable));
                }
            }
        }
    }
}

/// One transaction for the batch; per-message results, or the commit's error.
async fn commit(
    pool: &Pool,
    messages: Vec<NewMessage>,
) -> Result<Vec<Result<Message, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let mut savepoint = tx.begin().await?;
        match insert_message_in(&mut savepoint, message).await {
            Ok(stored) => {
                savepoint.commit().await?;
                results.push(Ok(stored));
            }
            Err(error) => {
                savepoint.rollback().await?;
                results.push(Err(error));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use colloquy_protocol::{MessageStatus, Sender};
    use uuid::Uuid;

    use super::*;
    use crate::store::{self, testing};

    fn user_message(conversation_id: Uuid, seq: u64, client_id: &str) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            conversation_id,
            sender: Sender::User,
            content: format!("message {seq}"),
            status: MessageStatus::Complete,
            seq,
            client_id: Some(client_id.into()),
            reply_id: None,
            error_code: None,
        }
    }

    #[tokio::test]
    async fn concurrent_inserts_commit_together_and_a_bad_row_fails_alone() {
        let (_dir, pool, user) = testing::database().await;
        let conversation = Uuid::now_v7();
        store::create_conversation(&pool, conversation, user, "")
            .await
            .unwrap();
        let writer = MessageWriter::spawn(pool.clone());

        let mut inserts = Vec::new();
        for seq in 1..=50u64 {
            // Message 25 reuses message 24's client_id: only it must fail.
            let client_id = if seq == 25 {
                "c24".to_owned()
            } else {
                format!("c{seq}")
            };
            let writer = writer.clone();
            inserts.push(tokio::spawn(async move {
                writer
                    .insert(user_message(conversation, seq, &client_id))
                    .await
            }));
        }
        let mut failures = 0;
        for insert in inserts {
            if let Err(error) = insert.await.unwrap() {
                assert!(matches!(error, StoreError::Conflict(_)), "{error}");
                failures += 1;
            }
        }
        assert_eq!(failures, 1);
        assert_eq!(
            store::list_messages(&pool, conversation)
                .await
                .unwrap()
                .len(),
            49
        );
        let stored = store::find_conversation(&pool, conversation, user)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.last_seq, 50);
    }
}
