//! The replies pending or running in each conversation: what `stop`
//! cancels, what a barge-in cuts, and what bounds the replies one
//! conversation may queue. Owned by the turn service; the hub only numbers
//! and fans out events.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One reply between its user message being stored and its final message.
struct ActiveReply {
    id: Uuid,
    cancel: CancellationToken,
    /// What the listener heard before speaking over it: stored instead of
    /// the generated text.
    heard: Option<String>,
}

/// Active replies by conversation id.
#[derive(Default)]
pub(super) struct Replies {
    by_conversation: Mutex<HashMap<Uuid, Vec<ActiveReply>>>,
}

impl Replies {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<ActiveReply>>> {
        // Plain data under a short lock: carry on after a panic elsewhere.
        self.by_conversation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Track a reply until [`Replies::finish`].
    pub(super) fn register(&self, conversation: Uuid, id: Uuid, cancel: CancellationToken) {
        self.lock()
            .entry(conversation)
            .or_default()
            .push(ActiveReply {
                id,
                cancel,
                heard: None,
            });
    }

    /// What a barge-in left for the reply to store instead of its text (once).
    pub(super) fn take_heard(&self, conversation: Uuid, id: Uuid) -> Option<String> {
        self.lock()
            .get_mut(&conversation)?
            .iter_mut()
            .find(|reply| reply.id == id)?
            .heard
            .take()
    }

    /// Forget a reply once its final message is out. A cut that arrived
    /// after [`Replies::take_heard`] is dropped with it: the final message
    /// shows the listener's side it came too late, and it cuts the stored
    /// reply instead.
    pub(super) fn finish(&self, conversation: Uuid, id: Uuid) {
        let mut replies = self.lock();
        let Some(active) = replies.get_mut(&conversation) else {
            return;
        };
        active.retain(|reply| reply.id != id);
        if active.is_empty() {
            replies.remove(&conversation);
        }
    }

    /// Replies pending or running in `conversation`.
    pub(super) fn pending(&self, conversation: Uuid) -> usize {
        self.lock().get(&conversation).map_or(0, Vec::len)
    }

    /// Cancel every reply of `conversation`; returns how many there were.
    pub(super) fn cancel_all(&self, conversation: Uuid) -> usize {
        let replies = self.lock();
        let active = replies.get(&conversation).map_or(&[][..], Vec::as_slice);
        for reply in active {
            reply.cancel.cancel();
        }
        active.len()
    }

    /// Cancel a reply and have it stored as `heard`; false when it already
    /// ended (nothing is kept: the caller cuts the stored reply instead).
    pub(super) fn cut(&self, conversation: Uuid, id: Uuid, heard: String) -> bool {
        let mut replies = self.lock();
        let Some(reply) = replies
            .get_mut(&conversation)
            .and_then(|active| active.iter_mut().find(|reply| reply.id == id))
        else {
            return false;
        };
        reply.heard = Some(heard);
        reply.cancel.cancel();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_is_taken_once_and_nothing_is_left_when_the_reply_finishes() {
        let replies = Replies::default();
        let (conversation, reply) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let cancel = CancellationToken::new();
        replies.register(conversation, reply, cancel.clone());
        assert_eq!(replies.pending(conversation), 1);
        assert!(replies.cut(conversation, reply, "heard".into()));
        assert!(cancel.is_cancelled());
        assert_eq!(
            replies.take_heard(conversation, reply).as_deref(),
            Some("heard")
        );
        assert_eq!(replies.take_heard(conversation, reply), None, "once");
        replies.finish(conversation, reply);
        assert_eq!(replies.pending(conversation), 0);
        assert!(replies.lock().is_empty(), "no entry lingers");
        assert!(!replies.cut(conversation, reply, "late".into()));
        assert!(replies.lock().is_empty(), "a late cut keeps nothing");
    }

    #[test]
    fn stop_cancels_every_reply_of_its_conversation_only() {
        let replies = Replies::default();
        let tokens: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
        replies.register(Uuid::from_u128(1), Uuid::from_u128(10), tokens[0].clone());
        replies.register(Uuid::from_u128(1), Uuid::from_u128(11), tokens[1].clone());
        replies.register(Uuid::from_u128(2), Uuid::from_u128(20), tokens[2].clone());
        assert_eq!(replies.cancel_all(Uuid::from_u128(1)), 2);
        assert!(tokens[0].is_cancelled() && tokens[1].is_cancelled());
        assert!(!tokens[2].is_cancelled());
    }
}
