//! A test double of an OpenAI-compatible server: real HTTP, real SSE
//! (`data: {chunk}` lines, `data: [DONE]`), scripted per request. Tool
//! calls stream as OpenAI streams them: `delta.tool_calls[]` fragments
//! keyed by `index`, the first of each call with its `id` and function
//! name, the rest only argument text (here cut small and interleaved
//! between calls), then `finish_reason: "tool_calls"`. Like OpenAI, the
//! token usage chunk comes only when `stream_options.include_usage` asks:
//! 10 prompt and 5 completion tokens for text, 20 and 8 for tool calls.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

/// What the fake does for one request.
#[derive(Clone, Debug)]
pub enum Script {
    /// Stream these tokens, one chunk each, `delay` apart, then finish.
    Tokens {
        tokens: Vec<String>,
        delay: Duration,
    },
    /// Answer with this HTTP status and an OpenAI-style error body.
    Status(u16),
    /// Stream these tokens, then go silent without finishing.
    StallAfter(Vec<String>),
    /// Call these tools: `(id, name, arguments text)`.
    ToolCalls(Vec<(String, String, String)>),
}

impl Script {
    /// Tokens streamed quickly.
    pub fn tokens(tokens: &[&str]) -> Self {
        Script::Tokens {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            delay: Duration::from_millis(5),
        }
    }

    /// Tool calls, each `(id, name, arguments text)`.
    pub fn tool_calls(calls: &[(&str, &str, &str)]) -> Self {
        Script::ToolCalls(
            calls
                .iter()
                .map(|(id, name, arguments)| {
                    (id.to_string(), name.to_string(), arguments.to_string())
                })
                .collect(),
        )
    }

    /// Tokens streamed `delay` apart.
    pub fn slow(tokens: &[&str], delay: Duration) -> Self {
        Script::Tokens {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            delay,
        }
    }
}

#[derive(Default)]
struct Shared {
    scripts: VecDeque<Script>,
    requests: Vec<Value>,
}

/// A running fake upstream.
#[derive(Clone)]
pub struct FakeOpenAi {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { addr, shared }
    }

    /// The base URL to give as `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queue the behaviour of the next request (default: a short fixed reply).
    pub fn push(&self, script: Script) {
        self.shared.lock().unwrap().scripts.push_back(script);
    }

    /// Bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
    }
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> Bytes {
    let delta = match content {
        Some(text) => json!({ "content": text }),
        None => json!({}),
    };
    delta_chunk(delta, finish)
}

fn delta_chunk(delta: Value, finish: Option<&str>) -> Bytes {
    let body = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "fake-model",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    Bytes::from(format!("data: {body}\n\n"))
}

async fn completions(
    State(shared): State<Arc<Mutex<Shared>>>,
    Json(body): Json<Value>,
) -> Response {
    assert_eq!(body["stream"], true, "Colloquy must ask for a stream");
    let include_usage = body["stream_options"]["include_usage"] == true;
    let script = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(body);
        shared
            .scripts
            .pop_front()
            .unwrap_or_else(|| Script::tokens(&["Hello", " from", " the", " fake", "."]))
    };
    let (tokens, delay, finish) = match script {
        Script::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            let error =
                json!({ "error": { "message": "scripted failure", "type": "server_error" } });
            return (status, Json(error)).into_response();
        }
        Script::ToolCalls(calls) => return tool_call_response(calls, include_usage),
        Script::Tokens { tokens, delay } => (tokens, delay, true),
        Script::StallAfter(tokens) => (tokens, Duration::from_millis(5), false),
    };
    let role = futures::stream::once(async {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]})
        ))
    });
    let deltas = futures::stream::iter(tokens).then(move |token| async move {
        tokio::time::sleep(delay).await;
        chunk(Some(&token), None)
    });
    let ending: futures::stream::BoxStream<'static, Bytes> = if finish {
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}});
        let mut ending = vec![chunk(None, Some("stop"))];
        if include_usage {
            ending.push(Bytes::from(format!("data: {usage}\n\n")));
        }
        ending.push(Bytes::from_static(b"data: [DONE]\n\n"));
        futures::stream::iter(ending).boxed()
    } else {
        futures::stream::pending().boxed()
    };
    let stream = role.chain(deltas).chain(ending).map(Ok::<_, Infallible>);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Argument text per fragment: small, so every call arrives in pieces.
const ARGUMENT_FRAGMENT_CHARS: usize = 4;

/// A streamed response that makes `calls`: each call's first fragment
/// (id and name), then their argument fragments interleaved by index.
fn tool_call_response(calls: Vec<(String, String, String)>, include_usage: bool) -> Response {
    let mut chunks = vec![delta_chunk(json!({ "role": "assistant" }), None)];
    let mut fragments: Vec<Vec<String>> = Vec::new();
    for (index, (id, name, arguments)) in calls.iter().enumerate() {
        chunks.push(delta_chunk(
            json!({ "tool_calls": [{
                "index": index, "id": id, "type": "function",
                "function": { "name": name, "arguments": "" },
            }]}),
            None,
        ));
        let chars: Vec<char> = arguments.chars().collect();
        fragments.push(
            chars
                .chunks(ARGUMENT_FRAGMENT_CHARS)
                .map(|piece| piece.iter().collect())
                .collect(),
        );
    }
    let longest = fragments.iter().map(Vec::len).max().unwrap_or(0);
    for step in 0..longest {
        for (index, pieces) in fragments.iter().enumerate() {
            if let Some(piece) = pieces.get(step) {
                chunks.push(delta_chunk(
                    json!({ "tool_calls": [{ "index": index, "function": { "arguments": piece } }] }),
                    None,
                ));
            }
        }
    }
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}});
    chunks.push(delta_chunk(json!({}), Some("tool_calls")));
    if include_usage {
        chunks.push(Bytes::from(format!("data: {usage}\n\n")));
    }
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let stream = futures::stream::iter(chunks).map(Ok::<_, Infallible>);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
