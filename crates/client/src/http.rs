//! Reading the server's JSON answers: the body of a success, or the
//! server's own error message.

use serde_json::Value;

use crate::ClientError;

/// The JSON body of a 2xx answer; any other status is an error carrying
/// the server's `error.message`.
pub(crate) async fn success_json(response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    if !status.is_success() {
        return Err(ClientError::Http(format!(
            "HTTP {status}: {}",
            body["error"]["message"]
        )));
    }
    Ok(body)
}
