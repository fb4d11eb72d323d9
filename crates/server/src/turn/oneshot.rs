//! One short request answered whole, within a time limit: the shape of the
//! small jobs a turn leaves behind (a title, a summary), which need the
//! model's whole answer and must never hang on it.

use std::time::Duration;

use colloquy_ai::{collect_reply, ChatRequest, Provider, ProviderError};

/// The text of `provider`'s answer to `request`, or why there is none
/// (`Timeout` once `limit` passes).
pub(super) async fn answer(
    provider: &dyn Provider,
    request: ChatRequest,
    limit: Duration,
) -> Result<String, ProviderError> {
    let answered = tokio::time::timeout(limit, async {
        let stream = provider.stream_chat(request).await?;
        collect_reply(stream).await.map(|(text, _)| text)
    })
    .await;
    answered.unwrap_or(Err(ProviderError::Timeout))
}
