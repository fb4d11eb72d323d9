//! An OpenAI-compatible endpoint, so any OpenAI SDK or tool can use a
//! Colloquy deployment and its models (the embedded one by default):
//! `POST /v1/chat/completions` (plain JSON, or Server-Sent Events with
//! `stream: true`) and `GET /v1/models`, with a Colloquy access token as the
//! API key. Stateless: nothing is stored. Each request pays its user's
//! message budget and takes a generation permit like a chat turn.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use colloquy_ai::{
    collect_reply,
    history::{estimate_tokens, trim_to_budget},
    ChatMessage, ChatRequest, FinishReason, ProviderError, Role, StreamEvent, Usage,
};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::completion_meter::CompletionMeter;
use crate::{
    auth::AuthUser,
    error::{ApiJson, AppError},
    models::ModelChoice,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(completions))
        .routes(routes!(models))
}

/// Most messages one request may carry.
const MAX_MESSAGES: usize = 500;

/// OpenAI's chat completion request; other fields are ignored.
#[derive(Deserialize, ToSchema)]
struct CompletionRequest {
    /// A `GET /v1/models` id.
    model: String,
    /// 1 to 500 messages; the oldest are dropped past the history budget.
    messages: Vec<RequestMessage>,
    /// Stream the reply as Server-Sent Events.
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// Capped at the server's `max_reply_tokens`.
    max_tokens: Option<u32>,
    /// Preferred over `max_tokens`.
    max_completion_tokens: Option<u32>,
    /// 0 to 2.
    temperature: Option<f32>,
}

#[derive(Deserialize, ToSchema)]
struct StreamOptions {
    /// End the stream with a chunk holding `usage`.
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize, ToSchema)]
struct RequestMessage {
    /// `system`, `developer`, `user` or `assistant`.
    role: String,
    content: Option<Content>,
}

/// OpenAI accepts a string or an array of parts; only text parts are read.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize, ToSchema)]
struct Part {
    /// Only `text` is supported.
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// OpenAI's `chat.completion` object.
#[derive(Serialize, ToSchema)]
struct Completion {
    id: String,
    /// `chat.completion`.
    object: &'static str,
    /// Unix seconds.
    created: i64,
    model: String,
    /// Exactly one.
    choices: Vec<Choice>,
    usage: TokenUsage,
}

#[derive(Serialize, ToSchema)]
struct Choice {
    index: u32,
    message: AssistantMessage,
    /// `stop`, `length`, ...
    finish_reason: String,
}

#[derive(Serialize, ToSchema)]
struct AssistantMessage {
    /// `assistant`.
    role: &'static str,
    content: String,
}

#[derive(Serialize, ToSchema)]
struct TokenUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

/// OpenAI's model list.
#[derive(Serialize, ToSchema)]
struct ModelList {
    /// `list`.
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Serialize, ToSchema)]
struct ModelEntry {
    /// What a request's `model` names.
    id: String,
    /// `model`.
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

impl Content {
    fn text(self) -> Result<String, AppError> {
        match self {
            Content::Text(text) => Ok(text),
            Content::Parts(parts) => parts
                .into_iter()
                .map(|part| match (part.kind.as_str(), part.text) {
                    ("text", Some(text)) => Ok(text),
                    _ => Err(invalid("only text content parts are supported")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|texts| texts.join("")),
        }
    }
}

fn invalid(message: &str) -> AppError {
    AppError::bad_request("invalid_request_error", message)
}

/// The model named by `id` (a `GET /v1/models` id).
fn find_model(state: &AppState, id: &str) -> Result<ModelChoice, AppError> {
    state.turns.models().find(id).cloned().ok_or_else(|| {
        AppError::bad_request(
            "model_not_found",
            "this server has no such model; GET /v1/models lists them",
        )
    })
}

/// The provider request: roles checked, history trimmed to the budget,
/// the reply capped at `max_reply_tokens`.
fn provider_request(state: &AppState, body: CompletionRequest) -> Result<ChatRequest, AppError> {
    if body.messages.is_empty() || body.messages.len() > MAX_MESSAGES {
        return Err(invalid("messages must hold 1 to 500 messages"));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for message in body.messages {
        let role = match message.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(invalid(
                    "message roles must be system, developer, user or assistant",
                ))
            }
        };
        let content = message
            .content
            .map(Content::text)
            .transpose()?
            .unwrap_or_default();
        messages.push(ChatMessage::new(role, content));
    }
    let settings = state.turns.settings();
    let max_reply = settings.max_reply_tokens;
    let asked = body
        .max_completion_tokens
        .or(body.max_tokens)
        .unwrap_or(max_reply);
    if body.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(invalid("temperature must be between 0 and 2"));
    }
    Ok(ChatRequest {
        messages: trim_to_budget(messages, settings.history_budget_tokens, estimate_tokens),
        max_tokens: Some(asked.clamp(1, max_reply)),
        temperature: body.temperature,
        ..ChatRequest::default()
    })
}

fn provider_error(error: ProviderError) -> AppError {
    AppError::provider(&error)
}

/// An OpenAI-compatible chat completion.
///
/// With a Colloquy access token as the API key; stateless (nothing is
/// stored), limited and counted like a chat turn. With `stream: true` the
/// reply comes as Server-Sent Events of `chat.completion.chunk` objects
/// ending with `[DONE]`; a failure mid-stream is a chunk with an `error`.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai",
    request_body = CompletionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The completion, or its chunks as an event stream.",
            content((Completion = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "`invalid_request_error`, `model_not_found` or a malformed body."),
        (status = 403, description = "`model_not_in_plan`: the caller's plan does not include the model."),
        (status = 429, description = "`rate_limited`: the user's message budget is spent; `quota_exceeded`: the plan's daily quota is (with `plan`, `limit`, `resets_at`, `upgrade`)."),
        (status = 502, description = "The model failed (its error code)."),
        (status = 503, description = "`overloaded`: every generation slot is busy."),
    ),
)]
async fn completions(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CompletionRequest>,
) -> Result<Response, AppError> {
    let model = find_model(&state, &body.model)?;
    let stream = body.stream;
    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let request = provider_request(&state, body)?;
    if !state.limits.allow_user_message(user.id) {
        return Err(AppError::RateLimited);
    }
    state.billing.check(user.id, &model.id, false).await?;
    let Some(permit) = state.turns.try_generation() else {
        return Err(AppError::Unavailable {
            code: "overloaded",
            message: "The model is busy. Please try again shortly.".into(),
        });
    };
    // Metered from here: a completion the model began is counted, however
    // it ends.
    let meter = CompletionMeter::new(
        state.billing.clone(),
        user.id,
        model.id.clone(),
        &request.messages,
    );
    let replies = match model.provider.stream_chat(request).await {
        Ok(replies) => replies,
        Err(error) => {
            meter.done(None).await;
            return Err(provider_error(error));
        }
    };
    let meta = Meta {
        id: format!("chatcmpl-{}", Uuid::now_v7().simple()),
        created: chrono::Utc::now().timestamp(),
        model: model.id,
    };
    if stream {
        let idle = Duration::from_secs(state.config.sse_idle_timeout_secs);
        let events = chunks(meta, replies, include_usage, meter).map(move |event| {
            // The permit lives as long as the stream: a client that goes
            // away drops both, which cancels the generation.
            let _generating = &permit;
            Ok::<_, Infallible>(event)
        });
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(idle / 2))
            .into_response());
    }
    let collected = collect_reply(replies).await;
    drop(permit);
    let (text, completion) = match collected {
        Ok(collected) => collected,
        Err(error) => {
            meter.done(None).await;
            return Err(provider_error(error));
        }
    };
    meter.done(completion.usage).await;
    let usage = completion.usage.unwrap_or_default();
    Ok(Json(Completion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: text,
            },
            finish_reason: finish_reason(&completion.finish_reason).to_owned(),
        }],
        usage: token_usage(usage),
    })
    .into_response())
}

/// What every chunk of one completion repeats.
struct Meta {
    id: String,
    created: i64,
    model: String,
}

fn finish_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Other(other) => other,
    }
}

fn token_usage(usage: Usage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
    }
}

/// The reply as OpenAI's chunks: the role, the text, the finish (and the
/// usage when asked), then `[DONE]`; a failure mid-way is an `error` chunk.
fn chunks(
    meta: Meta,
    replies: colloquy_ai::ReplyStream,
    include_usage: bool,
    meter: CompletionMeter,
) -> impl Stream<Item = Event> + Send + 'static {
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Value>| {
        let mut body = json!({
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": meta.model,
            "choices": if usage.is_some() { json!([]) } else {
                json!([{ "index": 0, "delta": delta, "finish_reason": finish }])
            },
        });
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        Event::default().data(body.to_string())
    };
    let first = chunk(json!({ "role": "assistant", "content": "" }), None, None);
    let rest = futures::stream::unfold(Some((replies, meter)), move |state| {
        let chunk = chunk.clone();
        async move {
            let (mut replies, mut meter) = state?;
            let events = match replies.next().await {
                Some(Ok(StreamEvent::Delta(text))) => {
                    meter.generated(&text);
                    return Some((
                        vec![chunk(json!({ "content": text }), None, None)],
                        Some((replies, meter)),
                    ));
                }
                Some(Ok(StreamEvent::Finished(completion))) => {
                    meter.done(completion.usage).await;
                    let mut events = vec![chunk(
                        json!({}),
                        Some(finish_reason(&completion.finish_reason)),
                        None,
                    )];
                    if include_usage {
                        let usage = token_usage(completion.usage.unwrap_or_default());
                        events.push(chunk(json!({}), None, Some(json!(usage))));
                    }
                    events
                }
                Some(Err(error)) => {
                    meter.done(None).await;
                    vec![error_event(&error)]
                }
                None => {
                    meter.done(None).await;
                    vec![error_event(&ProviderError::Protocol("ended early".into()))]
                }
            };
            let mut events = events;
            events.push(Event::default().data("[DONE]"));
            Some((events, None))
        }
    });
    futures::stream::once(async move { first }).chain(rest.flat_map(futures::stream::iter))
}

fn error_event(error: &ProviderError) -> Event {
    let body = json!({
        "error": {
            "message": ProviderError::public_message_for(error.code()),
            "type": "server_error",
            "code": error.code(),
        }
    });
    Event::default().data(body.to_string())
}

/// The models a completion can name.
#[utoipa::path(
    get, path = "/v1/models", tag = "openai",
    security(("bearer" = [])),
    responses((status = 200, description = "The models.", body = ModelList)),
)]
async fn models(State(state): State<AppState>, AuthUser(_): AuthUser) -> Json<ModelList> {
    let data = state
        .turns
        .models()
        .choices()
        .iter()
        .map(|choice| ModelEntry {
            id: choice.id.clone(),
            object: "model",
            created: 0,
            owned_by: "colloquy",
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
