//! The streamed response: Server-Sent Events whose `data:` lines are JSON
//! chunks, ending with `data: [DONE]`. Text arrives as `delta.content`; tool
//! calls as `delta.tool_calls` fragments keyed by `index`, the first of each
//! carrying the call's `id` and function name and later ones only more of
//! its argument text, finished by `finish_reason: "tool_calls"`.

use std::{collections::BTreeMap, time::Duration};

use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::provider::{Completion, FinishReason, ProviderError, StreamEvent, ToolCall, Usage};

/// Most tool calls one response may make.
pub const MAX_TOOL_CALLS: usize = 16;
/// Longest argument text of one call, in bytes.
pub const MAX_TOOL_ARGUMENT_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallFragment>,
}

/// A piece of one tool call.
#[derive(Deserialize)]
struct ToolCallFragment {
    index: usize,
    id: Option<String>,
    #[serde(default)]
    function: FunctionFragment,
}

#[derive(Deserialize, Default)]
struct FunctionFragment {
    name: Option<String>,
    arguments: Option<String>,
}

/// A tool call being assembled from its fragments.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The calls of one response, by the index the provider gave them.
#[derive(Default)]
struct ToolCalls(BTreeMap<usize, PartialCall>);

impl ToolCalls {
    fn add(&mut self, fragment: ToolCallFragment) -> Result<(), ProviderError> {
        if !self.0.contains_key(&fragment.index) && self.0.len() >= MAX_TOOL_CALLS {
            return Err(ProviderError::Protocol(format!(
                "more than {MAX_TOOL_CALLS} tool calls in one response"
            )));
        }
        let call = self.0.entry(fragment.index).or_default();
        if let Some(id) = fragment.id {
            call.id = id;
        }
        // Some servers split the name too; OpenAI sends it whole.
        if let Some(name) = fragment.function.name {
            call.name.push_str(&name);
        }
        if let Some(arguments) = fragment.function.arguments {
            call.arguments.push_str(&arguments);
        }
        if call.arguments.len() > MAX_TOOL_ARGUMENT_BYTES || call.name.len() > 64 {
            return Err(ProviderError::Protocol("a tool call is too long".into()));
        }
        Ok(())
    }

    /// The finished calls in order; each needs an id and a name.
    fn finish(self) -> Result<Vec<ToolCall>, ProviderError> {
        self.0
            .into_values()
            .map(|call| {
                if call.id.is_empty() || call.name.is_empty() {
                    return Err(ProviderError::Protocol(
                        "a tool call without an id or a name".into(),
                    ));
                }
                Ok(ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments: call.arguments,
                })
            })
            .collect()
    }
}

/// Parse state carried between SSE events.
struct ParseState<S> {
    events: S,
    idle_timeout: Duration,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    tool_calls: ToolCalls,
    done: bool,
}

impl<S> ParseState<S> {
    /// The final item: the completion with its tool calls. A response that
    /// made calls finished to run them, whatever reason it gave (some
    /// servers say `stop`).
    fn completion(&mut self, reason: FinishReason) -> Result<StreamEvent, ProviderError> {
        let tool_calls = std::mem::take(&mut self.tool_calls).finish()?;
        let finish_reason = if tool_calls.is_empty() {
            reason
        } else {
            FinishReason::ToolCalls
        };
        Ok(StreamEvent::Finished(Completion {
            usage: self.usage,
            finish_reason,
            tool_calls,
        }))
    }
}

fn parse_finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Turn SSE events into reply items; a silence longer than `idle_timeout`
/// ends the stream with [`ProviderError::Timeout`].
pub(super) fn parse_chunks<S, E>(
    events: S,
    idle_timeout: Duration,
) -> impl Stream<Item = Result<StreamEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<eventsource_stream::Event, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let state = ParseState {
        events,
        idle_timeout,
        finish_reason: None,
        usage: None,
        tool_calls: ToolCalls::default(),
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let next = match tokio::time::timeout(state.idle_timeout, state.events.next()).await {
                Err(_) => {
                    state.done = true;
                    return Some((Err(ProviderError::Timeout), state));
                }
                Ok(next) => next,
            };
            let event = match next {
                // The connection ended; a compliant server says [DONE] first,
                // but one that sent a finish reason has finished its reply.
                None => {
                    state.done = true;
                    let item = match state.finish_reason.take() {
                        Some(finish_reason) => state.completion(finish_reason),
                        None => Err(ProviderError::Unavailable(
                            "the stream ended before the reply was complete".into(),
                        )),
                    };
                    return Some((item, state));
                }
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(ProviderError::Unavailable(error.to_string())), state));
                }
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                state.done = true;
                let reason = state.finish_reason.take().unwrap_or(FinishReason::Stop);
                let item = state.completion(reason);
                return Some((item, state));
            }
            let chunk: Chunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(error) => {
                    state.done = true;
                    return Some((Err(ProviderError::Protocol(error.to_string())), state));
                }
            };
            if let Some(error) = chunk.error {
                state.done = true;
                let message = error["message"]
                    .as_str()
                    .unwrap_or("stream error")
                    .to_owned();
                return Some((
                    Err(ProviderError::Upstream {
                        status: 200,
                        message,
                    }),
                    state,
                ));
            }
            if let Some(usage) = chunk.usage {
                state.usage = Some(usage);
            }
            let mut text = String::new();
            for choice in chunk.choices {
                if let Some(reason) = choice.finish_reason {
                    state.finish_reason = Some(parse_finish_reason(&reason));
                }
                if let Some(content) = choice.delta.content {
                    text.push_str(&content);
                }
                for fragment in choice.delta.tool_calls {
                    if let Err(error) = state.tool_calls.add(fragment) {
                        state.done = true;
                        return Some((Err(error), state));
                    }
                }
            }
            if !text.is_empty() {
                return Some((Ok(StreamEvent::Delta(text)), state));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsource_stream::Eventsource;
    use futures::stream;

    fn sse(lines: &[&str]) -> impl Stream<Item = Result<bytes_like::Bytes, std::io::Error>> {
        let body: String = lines.iter().map(|l| format!("data: {l}\n\n")).collect();
        stream::iter(vec![Ok(bytes_like::Bytes::from(body))])
    }

    mod bytes_like {
        pub type Bytes = Vec<u8>;
    }

    async fn collect(lines: &[&str]) -> Vec<Result<StreamEvent, String>> {
        let events = sse(lines).eventsource();
        parse_chunks(events, Duration::from_secs(5))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn deltas_then_finished_with_usage() {
        let items = collect(&[
            r#"{"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ])
        .await;
        assert_eq!(
            items,
            vec![
                Ok(StreamEvent::Delta("Hel".into())),
                Ok(StreamEvent::Delta("lo".into())),
                Ok(StreamEvent::Finished(Completion {
                    usage: Some(Usage {
                        prompt_tokens: 3,
                        completion_tokens: 2,
                        cached_prompt_tokens: 0,
                    }),
                    finish_reason: FinishReason::Stop,
                    tool_calls: Vec::new(),
                })),
            ]
        );
    }

    #[tokio::test]
    async fn stream_cut_before_finish_is_an_error() {
        let items = collect(&[r#"{"choices":[{"delta":{"content":"Hi"}}]}"#]).await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[tokio::test]
    async fn malformed_chunk_is_a_protocol_error() {
        let items = collect(&["{not json"]).await;
        assert!(matches!(items.as_slice(), [Err(e)] if e.contains("unexpected data")));
    }

    #[tokio::test]
    async fn fragmented_parallel_tool_calls_are_assembled_in_order() {
        let items = collect(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":"Let me check."}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"calculate","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"expression\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_current_time","arguments":"{\"timezone\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"6*7\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":": \"Asia/Tokyo\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0], Ok(StreamEvent::Delta("Let me check.".into())));
        let Ok(StreamEvent::Finished(completion)) = &items[1] else {
            panic!("expected the completion: {items:?}");
        };
        assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            completion.tool_calls,
            vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "calculate".into(),
                    arguments: r#"{"expression": "6*7"}"#.into(),
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "get_current_time".into(),
                    arguments: r#"{"timezone": "Asia/Tokyo"}"#.into(),
                },
            ]
        );
    }

    #[tokio::test]
    async fn calls_finished_with_stop_still_finish_as_tool_calls() {
        let items = collect(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"calculate","arguments":"{}"}}]},"finish_reason":"stop"}]}"#,
        ])
        .await;
        let [Ok(StreamEvent::Finished(completion))] = items.as_slice() else {
            panic!("expected one completion: {items:?}");
        };
        assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
        assert_eq!(completion.tool_calls.len(), 1);
    }

    #[tokio::test]
    async fn a_call_without_an_id_or_name_is_a_protocol_error() {
        let items = collect(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .await;
        assert!(
            matches!(items.as_slice(), [Err(e)] if e.contains("without an id")),
            "{items:?}"
        );
    }

    #[tokio::test]
    async fn too_many_calls_or_too_long_arguments_end_the_stream() {
        let many: Vec<String> = (0..=MAX_TOOL_CALLS)
            .map(|i| {
                format!(
                    r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{i},"id":"c{i}","function":{{"name":"t","arguments":"{{}}"}}}}]}}}}]}}"#
                )
            })
            .collect();
        let lines: Vec<&str> = many.iter().map(String::as_str).collect();
        let items = collect(&lines).await;
        assert!(
            matches!(items.last(), Some(Err(e)) if e.contains("tool calls")),
            "{items:?}"
        );
        let long = format!(
            r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":0,"id":"c","function":{{"name":"t","arguments":"{}"}}}}]}}}}]}}"#,
            "x".repeat(MAX_TOOL_ARGUMENT_BYTES + 1)
        );
        let items = collect(&[long.as_str()]).await;
        assert!(
            matches!(items.as_slice(), [Err(e)] if e.contains("too long")),
            "{items:?}"
        );
    }
}
