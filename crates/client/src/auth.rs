//! Getting an access token over HTTP.

use serde_json::json;

use crate::{http::success_json, ClientError};

async fn token_from(response: reqwest::Response) -> Result<String, ClientError> {
    let body = success_json(response).await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("no access_token in the answer".into()))
}

/// A new anonymous user's token (`POST /api/auth/anonymous`).
pub async fn anonymous(base_url: &str) -> Result<String, ClientError> {
    anonymous_with(&reqwest::Client::new(), base_url).await
}

/// [`anonymous`] with a shared HTTP client.
pub async fn anonymous_with(
    client: &reqwest::Client,
    base_url: &str,
) -> Result<String, ClientError> {
    let response = client
        .post(format!("{base_url}/api/auth/anonymous"))
        .send()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    token_from(response).await
}

/// Sign in with email and password (`POST /auth/login`).
pub async fn login(base_url: &str, email: &str, password: &str) -> Result<String, ClientError> {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    token_from(response).await
}
