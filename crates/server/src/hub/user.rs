//! Per-user channels: events for every socket of one user (conversation
//! list changes), retired with the last subscription.

use std::sync::Arc;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{lock, Hub, Published};

/// Per-user events (conversation list changes) are rare; the channel's slots
/// are preallocated per signed-in user, so keep it small.
pub(super) const USER_EVENTS_BUFFER: usize = 32;

/// A socket's subscription to its user's events; the last one dropped
/// retires the user's channel.
pub struct UserSubscription {
    pub events: broadcast::Receiver<Arc<Published>>,
    pub(super) hub: Arc<Hub>,
    pub(super) user: Uuid,
}

impl Drop for UserSubscription {
    fn drop(&mut self) {
        let mut users = lock(&self.hub.users);
        // Subscriptions are only made under this lock: one receiver left is ours.
        if users
            .get(&self.user)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            users.remove(&self.user);
        }
    }
}
