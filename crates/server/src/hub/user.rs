//! Per-user channels: events for every socket of one user (conversation
//! list changes), retired with the last subscription.

use std::sync::Arc;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{lock, Hub, Published};

/// Per-user events (conversation list changes) are rare; the channel's slots
/// are preallocated per signed-in user, so keep it small.
const USER_EVENTS_BUFFER: usize = 32;

/// One user's channel and how many subscriptions hold it.
pub(super) struct UserChannel {
    pub(super) sender: broadcast::Sender<Arc<Published>>,
    /// Counted under the hub's lock, not read from the receiver count, which
    /// changes only after a subscription's fields drop, outside the lock.
    pub(super) subscribers: usize,
}

impl UserChannel {
    pub(super) fn new() -> Self {
        Self {
            sender: broadcast::channel(USER_EVENTS_BUFFER).0,
            subscribers: 0,
        }
    }
}

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
        if let Some(channel) = users.get_mut(&self.user) {
            channel.subscribers = channel.subscribers.saturating_sub(1);
            if channel.subscribers == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::ChannelSizes;

    #[test]
    fn subscriptions_dropped_at_once_from_many_threads_retire_the_user_channel() {
        let hub = Hub::new(ChannelSizes {
            subscriber_buffer: 4,
            replay_events: 4,
            linger: Duration::ZERO,
            max_replay: 64,
        });
        for round in 0..2000u128 {
            let user = Uuid::from_u128(round);
            let subscriptions = [hub.subscribe_user(user), hub.subscribe_user(user)];
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = subscriptions
                .into_iter()
                .map(|subscription| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        drop(subscription);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("dropping thread");
            }
        }
        assert_eq!(hub.live_users(), 0);
    }
}
