//! Conversations over HTTP: creating one before any socket opens it, so
//! several sockets (on several servers of a cluster) can watch it from its
//! first event.

use uuid::Uuid;

use crate::{http::success_json, ClientError};

/// A new, empty conversation of the token's user (`POST /api/conversations`).
pub async fn create_with(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
) -> Result<Uuid, ClientError> {
    let response = client
        .post(format!("{base_url}/api/conversations"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let body = success_json(response).await?;
    body["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ClientError::Protocol("no conversation id in the answer".into()))
}
