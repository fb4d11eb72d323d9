//! Group commit for messages. Every conversation's inserts queue to one
//! writer task, which commits whatever has gathered in a single transaction
//! (one savepoint per message, so one bad row fails alone). With SQLite's
//! `synchronous=full` each commit is an fsync; sharing it across concurrent
//! turns keeps "stored before the ack" cheap under load, while a lone
//! message still commits at once. A reply's usage is added in its
//! message's savepoint: stored together or not at all, so counted once.

use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::{
    add_usage, insert_message_in, save_checkpoint_in, Message, NewMessage, Pool, ReplyCheckpoint,
    StoreError, UsageDelta,
};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Writes allowed to wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

/// One write and where its result goes.
enum Job {
    Message(
        NewMessage,
        // Boxed: most messages carry none, and the queue holds thousands.
        Option<Box<UsageDelta>>,
        oneshot::Sender<Result<Message, StoreError>>,
    ),
    Checkpoint(ReplyCheckpoint, oneshot::Sender<Result<(), StoreError>>),
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
        self.insert_counted(message, None).await
    }

    /// Store `message` and add `usage` (what the reply cost) in the same
    /// transaction: both or neither.
    pub async fn insert_counted(
        &self,
        message: NewMessage,
        usage: Option<UsageDelta>,
    ) -> Result<Message, StoreError> {
        let (done, result) = oneshot::channel();
        self.send(Job::Message(message, usage.map(Box::new), done))
            .await?;
        result.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Save a streaming reply's checkpoint durably.
    pub async fn checkpoint(&self, checkpoint: ReplyCheckpoint) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        self.send(Job::Checkpoint(checkpoint, done)).await?;
        result.await.map_err(|_| StoreError::Unavailable)?
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable)
    }
}

/// What one write produced.
enum Written {
    Message(Result<Message, StoreError>),
    Checkpoint(Result<(), StoreError>),
}

impl Job {
    async fn write(&self, conn: &mut sqlx::AnyConnection) -> Written {
        match self {
            Job::Message(message, usage, _) => {
                let inserted = insert_message_in(conn, message.clone()).await;
                Written::Message(match (inserted, usage) {
                    (Ok(stored), Some(usage)) => {
                        add_usage(&mut *conn, usage).await.map(|()| stored)
                    }
                    (inserted, _) => inserted,
                })
            }
            Job::Checkpoint(checkpoint, _) => {
                Written::Checkpoint(save_checkpoint_in(conn, checkpoint).await)
            }
        }
    }

    fn answer(self, written: Written) {
        match (self, written) {
            (Job::Message(_, _, done), Written::Message(result)) => {
                let _ = done.send(result);
            }
            (Job::Checkpoint(_, done), Written::Checkpoint(result)) => {
                let _ = done.send(result);
            }
            (job, _) => job.fail(StoreError::Unavailable),
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            Job::Message(_, _, done) => {
                let _ = done.send(Err(error));
            }
            Job::Checkpoint(_, done) => {
                let _ = done.send(Err(error));
            }
        }
    }
}

async fn run(pool: Pool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&pool, &batch).await {
            Ok(results) => {
                for (job, written) in batch.drain(..).zip(results) {
                    job.answer(written);
                }
            }
            // The batch's transaction failed as a whole (a busy or broken
            // connection, a failed commit): try each write alone, so one bad
            // row or a passing failure fails only itself.
            Err(error) => {
                tracing::warn!(%error, size = batch.len(), "write batch failed to commit; committing one by one");
                for job in batch.drain(..) {
                    match commit(&pool, std::slice::from_ref(&job)).await {
                        Ok(mut results) => match results.pop() {
                            Some(written) => job.answer(written),
                            None => job.fail(StoreError::Unavailable),
                        },
                        Err(error) => job.fail(error),
                    }
                }
            }
        }
    }
}

/// One transaction for the batch (one savepoint per write, so one bad row
/// fails alone); per-write results, or the transaction's error.
async fn commit(pool: &Pool, jobs: &[Job]) -> Result<Vec<Written>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut savepoint = tx.begin().await?;
        let written = job.write(&mut savepoint).await;
        let ok = match &written {
            Written::Message(result) => result.is_ok(),
            Written::Checkpoint(result) => result.is_ok(),
        };
        if ok {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        results.push(written);
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
            parent: store::Parent::ActiveLeaf,
            activate: None,
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
