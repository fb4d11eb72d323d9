//! The Live API's JSON messages (`BidiGenerateContent`), as typed structs.
//!
//! Client messages are built from borrowed data and serialized once per
//! frame. Server messages are parsed leniently, field by field: unknown
//! fields are ignored (the service adds fields over time) and a malformed
//! field costs only that field, with a warning, never the whole message.
//! Names are the proto's, in camelCase, as the service's JSON uses them.

use std::time::Duration;

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    tools::{
        FunctionResponse, ToolCallCancellation, ToolCallMessage, ToolDeclarations, ToolResponse,
    },
    LiveToolResult, LiveUsage,
};

/// MIME type of the audio we send: 16 kHz mono PCM16 little-endian.
pub const INPUT_AUDIO_MIME: &str = "audio/pcm;rate=16000";

/// Sample rate of the audio the native-audio models send back.
pub const OUTPUT_AUDIO_RATE: u32 = 24_000;

/// The base64 flavour of proto JSON `bytes` fields (standard alphabet, padded).
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One message from us to the service; exactly one field is set on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ClientMessage<'a> {
    /// The first and only first message of a connection.
    Setup(Setup<'a>),
    /// Streaming user input.
    RealtimeInput(RealtimeInput<'a>),
    /// The result of a function the service asked us to call.
    ToolResponse(ToolResponse<'a>),
}

impl ClientMessage<'_> {
    /// The JSON text of this message.
    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// `BidiGenerateContentSetup`: the session configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Setup<'a> {
    /// `models/<name>`.
    pub model: String,
    pub generation_config: GenerationConfig<'a>,
    pub system_instruction: Content<'a>,
    /// Present and empty: transcribe the user's speech.
    pub input_audio_transcription: Empty,
    /// Present and empty: transcribe the model's speech.
    pub output_audio_transcription: Empty,
    /// Always present, so the service sends resumption handles; carries the
    /// handle when this connection resumes an earlier one.
    pub session_resumption: SessionResumption<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window_compression: Option<ContextWindowCompression>,
    /// Functions the model may call; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDeclarations<'a>>,
}

/// An empty JSON object, `{}`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Empty {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig<'a> {
    /// Always `["AUDIO"]`: native-audio models speak their replies.
    pub response_modalities: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_config: Option<SpeechConfig<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SpeechConfig<'a> {
    pub voice_config: VoiceConfig<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VoiceConfig<'a> {
    pub prebuilt_voice_config: PrebuiltVoiceConfig<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrebuiltVoiceConfig<'a> {
    pub voice_name: &'a str,
}

/// `Content` with text parts only (what a system instruction needs).
#[derive(Debug, Serialize)]
pub(crate) struct Content<'a> {
    pub parts: [TextPart<'a>; 1],
}

#[derive(Debug, Serialize)]
pub(crate) struct TextPart<'a> {
    pub text: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct SessionResumption<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<&'a str>,
}

/// `{"slidingWindow": {}}`: the service trims the oldest context instead of
/// ending an audio session when its context window fills (about 15 minutes
/// of audio without it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContextWindowCompression {
    pub sliding_window: Empty,
}

/// `BidiGenerateContentRealtimeInput`, the fields we use.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RealtimeInput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<Blob<'a>>,
    /// Tells the service the microphone stream ended (flushes its VAD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_stream_end: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob<'a> {
    /// Base64 of the bytes.
    pub data: String,
    pub mime_type: &'a str,
}

/// The JSON text of one `realtimeInput.audio` message for a PCM chunk.
pub(crate) fn audio_message(pcm: &[u8]) -> Result<String, serde_json::Error> {
    ClientMessage::RealtimeInput(RealtimeInput {
        audio: Some(Blob {
            data: BASE64.encode(pcm),
            mime_type: INPUT_AUDIO_MIME,
        }),
        audio_stream_end: None,
    })
    .to_json()
}

/// The JSON text of the `realtimeInput.audioStreamEnd` message.
pub(crate) fn audio_stream_end_message() -> Result<String, serde_json::Error> {
    ClientMessage::RealtimeInput(RealtimeInput {
        audio: None,
        audio_stream_end: Some(true),
    })
    .to_json()
}

/// The JSON text of the `toolResponse` message carrying `result`.
pub(crate) fn tool_response_message(result: &LiveToolResult) -> Result<String, serde_json::Error> {
    ClientMessage::ToolResponse(ToolResponse {
        function_responses: [FunctionResponse {
            id: &result.id,
            name: &result.name,
            response: &result.response,
        }],
    })
    .to_json()
}

/// One message from the service (`BidiGenerateContentServerMessage`). Any
/// combination of fields may be set; `usageMetadata` often rides along.
#[derive(Debug, Default)]
pub(crate) struct ServerMessage {
    pub setup_complete: bool,
    pub server_content: Option<ServerContent>,
    pub go_away: Option<GoAway>,
    pub session_resumption_update: Option<SessionResumptionUpdate>,
    pub usage_metadata: Option<LiveUsage>,
    pub tool_call: Option<ToolCallMessage>,
    pub tool_call_cancellation: Option<ToolCallCancellation>,
    /// A Google error envelope; not part of the Live proto, but proxies and
    /// older front ends send one before closing.
    pub error: Option<ServerError>,
    /// Fields we do not act on, by name, for debug logs.
    pub ignored: Vec<String>,
}

impl ServerMessage {
    /// Parse one frame's JSON. Fails only when the frame is not a JSON
    /// object; bad fields inside it are skipped with a warning.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let fields: Map<String, Value> = serde_json::from_slice(bytes)?;
        let mut message = ServerMessage::default();
        for (name, value) in fields {
            match name.as_str() {
                "setupComplete" => message.setup_complete = !value.is_null(),
                "serverContent" => message.server_content = field(&name, value),
                "goAway" => message.go_away = field(&name, value),
                "sessionResumptionUpdate" => {
                    message.session_resumption_update = field(&name, value)
                }
                "usageMetadata" => message.usage_metadata = field(&name, value),
                "toolCall" => message.tool_call = field(&name, value),
                "toolCallCancellation" => message.tool_call_cancellation = field(&name, value),
                "error" => message.error = field(&name, value),
                _ => message.ignored.push(name),
            }
        }
        Ok(message)
    }
}

/// Decode one field, or log and drop it.
fn field<T: DeserializeOwned>(name: &str, value: Value) -> Option<T> {
    if value.is_null() {
        return None;
    }
    match serde_json::from_value(value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            // Only the error's category: its message may quote the payload.
            tracing::warn!(field = name, kind = ?error.classify(), "skipping a malformed Gemini Live field");
            None
        }
    }
}

/// `BidiGenerateContentServerContent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ServerContent {
    pub model_turn: Option<ModelTurn>,
    pub turn_complete: Option<bool>,
    pub generation_complete: Option<bool>,
    pub interrupted: Option<bool>,
    pub input_transcription: Option<Transcription>,
    pub output_transcription: Option<Transcription>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ModelTurn {
    pub parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Part {
    pub text: Option<String>,
    pub inline_data: Option<InlineData>,
    pub thought: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct InlineData {
    pub mime_type: Option<String>,
    pub data: Option<String>,
}

/// A transcription chunk; the service also sends it with no `text`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Transcription {
    pub text: Option<String>,
}

/// `GoAway`: the connection will be closed after `timeLeft`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GoAway {
    /// A proto `Duration`: in JSON a string such as `"9.5s"`.
    pub time_left: Option<Value>,
}

impl GoAway {
    /// `timeLeft` as a duration, when present and well formed.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        parse_duration(self.time_left.as_ref()?)
    }
}

/// A proto JSON `Duration`: `"1.5s"`, or `{"seconds": 1, "nanos": 5e8}` as
/// some encoders write it.
fn parse_duration(value: &Value) -> Option<Duration> {
    match value {
        Value::String(text) => {
            let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
            Duration::try_from_secs_f64(seconds).ok()
        }
        Value::Object(map) => {
            let seconds = match map.get("seconds") {
                Some(Value::String(s)) => s.parse::<u64>().ok()?,
                Some(Value::Number(n)) => n.as_u64()?,
                None => 0,
                Some(_) => return None,
            };
            let nanos = map.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            Some(Duration::from_secs(seconds) + Duration::from_nanos(nanos.min(999_999_999)))
        }
        _ => None,
    }
}

/// `SessionResumptionUpdate`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SessionResumptionUpdate {
    pub new_handle: Option<String>,
    pub resumable: Option<bool>,
}

/// `{"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServerError {
    pub code: Option<i64>,
    pub message: Option<String>,
    pub status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_messages_are_realtime_input_with_base64_pcm() {
        let json: Value = serde_json::from_str(&audio_message(&[1, 0, 255, 127]).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"realtimeInput": {"audio": {
                "data": "AQD/fw==", "mimeType": "audio/pcm;rate=16000"}}})
        );
        let end: Value = serde_json::from_str(&audio_stream_end_message().unwrap()).unwrap();
        assert_eq!(
            end,
            serde_json::json!({"realtimeInput": {"audioStreamEnd": true}})
        );
    }

    #[test]
    fn server_messages_ignore_unknown_fields_and_survive_bad_ones() {
        let raw = br#"{
            "serverContent": {"modelTurn": {"parts": [{"inlineData":
                {"mimeType": "audio/pcm;rate=24000", "data": "AAA="}}]},
                "somethingNew": 1},
            "usageMetadata": {"promptTokenCount": "not a number"},
            "toolCall": {"functionCalls": "not a list"},
            "somethingElse": {}
        }"#;
        let message = ServerMessage::parse(raw).unwrap();
        let content = message.server_content.unwrap();
        assert_eq!(content.model_turn.unwrap().parts.len(), 1);
        assert!(
            message.usage_metadata.is_none(),
            "the malformed field is dropped"
        );
        assert!(
            message.tool_call.is_none(),
            "the malformed field is dropped"
        );
        assert_eq!(message.ignored, vec!["somethingElse".to_owned()]);
        assert!(ServerMessage::parse(b"[1,2]").is_err());
        assert!(
            ServerMessage::parse(br#"{"setupComplete": {}}"#)
                .unwrap()
                .setup_complete
        );
    }

    #[test]
    fn go_away_time_left_parses_proto_durations() {
        let parse = |v: Value| GoAway { time_left: Some(v) }.time_left();
        assert_eq!(parse("9.5s".into()), Some(Duration::from_millis(9500)));
        assert_eq!(parse("0s".into()), Some(Duration::ZERO));
        assert_eq!(
            parse(serde_json::json!({"seconds": "2", "nanos": 1000})),
            Some(Duration::from_secs(2) + Duration::from_micros(1))
        );
        assert_eq!(parse("soon".into()), None);
        assert_eq!(parse("-1s".into()), None);
    }
}
