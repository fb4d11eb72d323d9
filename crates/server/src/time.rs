//! A timing helper the socket loops and the reply task share.

use tokio::time::{sleep_until, Instant};

/// Sleep until `at`, or forever when there is nothing to wait for: a
/// `select!` branch for an optional deadline.
pub(crate) async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
