//! The fake's strictness: every client message is parsed against the
//! proto's shape (unknown fields refused) and checked the way the service
//! checks it; a violation is a close code and a reason.

use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{drain_until_closed, Shared, Socket, Violation};

/// Record a valid message after setup, or name the violation.
pub(super) fn accept(
    message: ClientMessage,
    shared: &Shared,
    index: usize,
) -> Result<(), Violation> {
    match message {
        ClientMessage::Setup(_) => Err((
            1007,
            "Request contains an invalid argument: setup may only be sent once.".into(),
        )),
        ClientMessage::RealtimeInput(input) => {
            if let Some(audio) = input.audio {
                if audio.mime_type != "audio/pcm;rate=16000" {
                    return Err((
                        1007,
                        format!("Unsupported audio mimeType {:?}.", audio.mime_type),
                    ));
                }
                let pcm = base64::engine::general_purpose::STANDARD
                    .decode(&audio.data)
                    .map_err(|_| {
                        (
                            1007,
                            "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES), Base64 decoding failed".to_owned(),
                        )
                    })?;
                shared.with_conn(index, |c| {
                    c.audio.extend_from_slice(&pcm);
                    c.audio_chunks += 1;
                });
            }
            if input.audio_stream_end == Some(true) {
                shared.with_conn(index, |c| c.audio_stream_end = true);
            }
            Ok(())
        }
        ClientMessage::ToolResponse(response) => accept_tool_response(response, shared, index),
        ClientMessage::Other => Ok(()),
    }
}

/// A `toolResponse` must answer, by id and name, calls this connection
/// made and did not cancel, each once, with an object.
fn accept_tool_response(raw: Value, shared: &Shared, index: usize) -> Result<(), Violation> {
    let typed: ToolResponseIn = serde_json::from_value(raw).map_err(invalid_payload)?;
    if typed.function_responses.is_empty() {
        return Err(invalid("toolResponse.functionResponses is empty."));
    }
    shared.with_conn(index, |c| {
        for response in &typed.function_responses {
            let id = response.id.as_deref().unwrap_or_default();
            let position = c
                .open_calls
                .iter()
                .position(|(open_id, name)| open_id == id && *name == response.name)
                .ok_or_else(|| {
                    invalid(&format!(
                        "function response {id:?} ({}) answers no pending function call.",
                        response.name
                    ))
                })?;
            c.open_calls.remove(position);
            c.tool_responses.push(json!({
                "id": id, "name": response.name, "response": response.response,
            }));
        }
        Ok(())
    })
}

fn invalid(what: &str) -> Violation {
    (
        1007,
        format!("Request contains an invalid argument: {what}"),
    )
}

/// Declared functions: names the service accepts and one schema form.
fn check_tools(tools: &[ToolIn]) -> Result<(), Violation> {
    for declaration in tools
        .iter()
        .flat_map(|tool| tool.function_declarations.iter().flatten())
    {
        let name = &declaration.name;
        let valid_name = (1..=64).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if !valid_name {
            return Err(invalid(&format!("invalid function name {name:?}.")));
        }
        if declaration.parameters.is_some() && declaration.parameters_json_schema.is_some() {
            return Err(invalid(
                "parameters and parametersJsonSchema are mutually exclusive.",
            ));
        }
        if let Some(schema) = &declaration.parameters_json_schema {
            if schema.get("type") != Some(&json!("object")) {
                return Err(invalid("parametersJsonSchema must describe an object."));
            }
        }
    }
    Ok(())
}

pub(super) fn check_setup(setup: &Value, shared: &Shared) -> Result<(), Violation> {
    let typed: SetupIn = serde_json::from_value(setup.clone()).map_err(invalid_payload)?;
    if typed.model != shared.config.model {
        return Err((
            1008,
            format!(
                "{} is not found for API version v1beta, or is not supported for bidiGenerateContent.",
                typed.model
            ),
        ));
    }
    let modalities = typed
        .generation_config
        .and_then(|config| config.response_modalities)
        .unwrap_or_default();
    if modalities != ["AUDIO"] {
        return Err((
            1007,
            "Request contains an invalid argument: this model only supports responseModalities [AUDIO].".into(),
        ));
    }
    check_tools(typed.tools.as_deref().unwrap_or_default())?;
    if let Some(handle) = typed.session_resumption.and_then(|r| r.handle) {
        let known = shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issued_handles
            .contains(&handle);
        if !known {
            return Err((1008, "Invalid session resumption handle.".into()));
        }
    }
    Ok(())
}

pub(super) enum Incoming {
    Message(ClientMessage),
    /// The client closed (or the connection ended).
    Closed,
}

pub(super) enum ClientMessage {
    Setup(Value),
    RealtimeInput(Box<RealtimeInputIn>),
    ToolResponse(Value),
    /// `clientContent`: valid, not used here.
    Other,
}

/// Read the next data message, strictly.
pub(super) async fn next_client_message(
    socket: &mut Socket,
    shared: &Shared,
    index: usize,
) -> Result<Incoming, Violation> {
    loop {
        let bytes = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                shared.with_conn(index, |c| c.client_close = Some(code));
                // Let tungstenite answer the close.
                drain_until_closed(socket, shared, index).await;
                return Ok(Incoming::Closed);
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Ok(Incoming::Closed),
        };
        let raw: Value = serde_json::from_slice(&bytes).map_err(invalid_payload)?;
        shared.with_conn(index, |c| c.messages.push(raw.clone()));
        let typed: ClientMessageIn = serde_json::from_value(raw).map_err(invalid_payload)?;
        let set = [
            typed.setup.is_some(),
            typed.client_content.is_some(),
            typed.realtime_input.is_some(),
            typed.tool_response.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if set != 1 {
            return Err((
                1007,
                "Request contains an invalid argument: exactly one message field must be set."
                    .into(),
            ));
        }
        return Ok(Incoming::Message(if let Some(setup) = typed.setup {
            ClientMessage::Setup(setup)
        } else if let Some(input) = typed.realtime_input {
            ClientMessage::RealtimeInput(input)
        } else if let Some(response) = typed.tool_response {
            ClientMessage::ToolResponse(response)
        } else {
            ClientMessage::Other
        }));
    }
}

fn invalid_payload(error: serde_json::Error) -> Violation {
    (1007, format!("Invalid JSON payload received. {error}"))
}

// The client message as the proto defines it; unknown fields are refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClientMessageIn {
    setup: Option<Value>,
    client_content: Option<Value>,
    realtime_input: Option<Box<RealtimeInputIn>>,
    tool_response: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields exist to be validated
struct SetupIn {
    model: String,
    generation_config: Option<GenerationConfigIn>,
    system_instruction: Option<ContentIn>,
    tools: Option<Vec<ToolIn>>,
    realtime_input_config: Option<Value>,
    session_resumption: Option<SessionResumptionIn>,
    context_window_compression: Option<ContextWindowCompressionIn>,
    input_audio_transcription: Option<Empty>,
    output_audio_transcription: Option<Empty>,
    proactivity: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct GenerationConfigIn {
    candidate_count: Option<Value>,
    max_output_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    top_k: Option<Value>,
    presence_penalty: Option<Value>,
    frequency_penalty: Option<Value>,
    response_modalities: Option<Vec<String>>,
    speech_config: Option<SpeechConfigIn>,
    media_resolution: Option<Value>,
    thinking_config: Option<Value>,
    enable_affective_dialog: Option<Value>,
    seed: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct SpeechConfigIn {
    voice_config: Option<VoiceConfigIn>,
    language_code: Option<String>,
    multi_speaker_voice_config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct VoiceConfigIn {
    prebuilt_voice_config: Option<PrebuiltVoiceConfigIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct PrebuiltVoiceConfigIn {
    voice_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ContentIn {
    parts: Vec<TextPartIn>,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TextPartIn {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SessionResumptionIn {
    handle: Option<String>,
    transparent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ContextWindowCompressionIn {
    sliding_window: Option<Value>,
    trigger_tokens: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ToolIn {
    function_declarations: Option<Vec<FunctionDeclarationIn>>,
    google_search: Option<Value>,
    code_execution: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct FunctionDeclarationIn {
    name: String,
    description: Option<String>,
    behavior: Option<String>,
    parameters: Option<Value>,
    parameters_json_schema: Option<Value>,
    response: Option<Value>,
    response_json_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ToolResponseIn {
    function_responses: Vec<FunctionResponseIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct FunctionResponseIn {
    id: Option<String>,
    name: String,
    /// A proto `Struct`: only a JSON object parses.
    response: serde_json::Map<String, Value>,
    will_continue: Option<bool>,
    scheduling: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RealtimeInputIn {
    media_chunks: Option<Value>,
    audio: Option<BlobIn>,
    video: Option<Value>,
    text: Option<String>,
    activity_start: Option<Value>,
    activity_end: Option<Value>,
    audio_stream_end: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BlobIn {
    mime_type: String,
    data: String,
}
