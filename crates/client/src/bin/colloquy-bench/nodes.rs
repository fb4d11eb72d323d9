//! The servers a run spreads its sockets over: round-robin homes, a
//! watcher's node different from its sender's, and the node a dropped
//! socket moves to. A node the bench killed is never picked again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use colloquy_client::{ChatSocket, ClientError};

/// The run's servers (one, or the nodes of a cluster) and which are down.
#[derive(Debug)]
pub struct Nodes {
    urls: Vec<String>,
    down: Vec<AtomicBool>,
}

impl Nodes {
    /// `urls` must not be empty (the caller has at least one server).
    pub fn new(urls: Vec<String>) -> Self {
        let down = urls.iter().map(|_| AtomicBool::new(false)).collect();
        Self { urls, down }
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Several servers: every conversation gets a watcher on another node.
    pub fn is_cluster(&self) -> bool {
        self.urls.len() > 1
    }

    pub fn url(&self, node: usize) -> &str {
        &self.urls[node % self.urls.len()]
    }

    /// Where socket number `socket` opens: round-robin over the nodes.
    pub fn home(&self, socket: usize) -> usize {
        socket % self.urls.len()
    }

    /// Where the watcher of socket `socket`'s conversation opens: the next
    /// node, so every pair crosses nodes and every node both sends and watches.
    pub fn watcher_home(&self, socket: usize) -> usize {
        (socket + 1) % self.urls.len()
    }

    /// The bench is about to kill `node`: sockets leave it and none comes back.
    pub fn mark_down(&self, node: usize) {
        if let Some(flag) = self.down.get(node) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_down(&self, node: usize) -> bool {
        self.down
            .get(node)
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// A node up other than `from` and, if one is left, other than
    /// `partner` (the other socket of the conversation, so a sender and
    /// its watcher stay on different nodes). Searching from the node after
    /// `from` makes repeated moves rotate over the cluster. With one server
    /// this is that server: a reconnect goes back where it was.
    pub fn pick_other(&self, from: usize, partner: usize) -> usize {
        let count = self.urls.len();
        let candidates = || (1..=count).map(|step| (from + step) % count);
        candidates()
            .find(|&node| node != from && node != partner && !self.is_down(node))
            .or_else(|| candidates().find(|&node| node != from && !self.is_down(node)))
            .unwrap_or(from)
    }

    /// Resume `socket` on a node picked by [`Self::pick_other`]: `at` holds
    /// the node it was on and follows it; `partner` is where the other
    /// socket of its conversation is. The move is added to `moves`
    /// (described with `why`), for a report of what went wrong.
    pub async fn resume_elsewhere(
        &self,
        socket: &mut ChatSocket,
        at: &AtomicUsize,
        partner: &AtomicUsize,
        (why, moves): (&str, &mut Vec<String>),
    ) -> Result<(), ClientError> {
        let from = at.load(Ordering::Relaxed);
        let to = self.pick_other(from, partner.load(Ordering::Relaxed));
        at.store(to, Ordering::Relaxed);
        moves.push(format!(
            "{why} at seq {}: node {} -> {}",
            socket.last_seq(),
            from + 1,
            to + 1
        ));
        socket.resume_at(self.url(to)).await
    }
}

/// Where the two sockets of one conversation are right now.
#[derive(Debug)]
pub struct Placement {
    pub sender: AtomicUsize,
    pub watcher: AtomicUsize,
}

impl Placement {
    pub fn new(sender: usize, watcher: usize) -> Self {
        Self {
            sender: AtomicUsize::new(sender),
            watcher: AtomicUsize::new(watcher),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Nodes {
        Nodes::new(vec!["a".into(), "b".into(), "c".into()])
    }

    #[test]
    fn a_move_avoids_the_old_node_and_the_partner() {
        let nodes = three();
        assert_eq!(nodes.pick_other(0, 1), 2);
        assert_eq!(nodes.pick_other(2, 1), 0);
    }

    #[test]
    fn a_killed_node_is_never_picked() {
        let nodes = three();
        nodes.mark_down(2);
        assert_eq!(nodes.pick_other(2, 0), 1);
        // Only the partner's node is left: share it rather than stay on a dead one.
        assert_eq!(nodes.pick_other(0, 1), 1);
    }

    #[test]
    fn one_server_is_always_the_one_to_go_back_to() {
        let nodes = Nodes::new(vec!["a".into()]);
        assert_eq!(nodes.pick_other(0, 0), 0);
        assert!(!nodes.is_cluster());
    }
}
