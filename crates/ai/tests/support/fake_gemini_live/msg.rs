//! Server messages as the service shapes them, for scripts.

use base64::Engine as _;
use serde_json::{json, Value};

pub fn input_transcription(text: &str) -> Value {
    json!({"serverContent": {"inputTranscription": {"text": text}}})
}

pub fn output_transcription(text: &str) -> Value {
    json!({"serverContent": {"outputTranscription": {"text": text}}})
}

/// A chunk of model speech (24 kHz PCM16 LE bytes).
pub fn audio(pcm: &[u8]) -> Value {
    json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
        "mimeType": "audio/pcm;rate=24000",
        "data": base64::engine::general_purpose::STANDARD.encode(pcm),
    }}]}}})
}

pub fn interrupted() -> Value {
    json!({"serverContent": {"interrupted": true}})
}

pub fn generation_complete() -> Value {
    json!({"serverContent": {"generationComplete": true}})
}

/// `turnComplete` with the usage the service reports alongside it.
pub fn turn_complete_with_usage(prompt: u32, response: u32) -> Value {
    json!({
        "serverContent": {"turnComplete": true},
        "usageMetadata": {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt}],
        }
    })
}

pub fn turn_complete() -> Value {
    json!({"serverContent": {"turnComplete": true}})
}

pub fn resumption_update(handle: &str, resumable: bool) -> Value {
    json!({"sessionResumptionUpdate": {"newHandle": handle, "resumable": resumable}})
}

pub fn go_away(time_left: &str) -> Value {
    json!({"goAway": {"timeLeft": time_left}})
}

/// `toolCall` with one function call per `(id, name, args)`.
pub fn tool_call(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "name": name, "args": args}))
        .collect();
    json!({"toolCall": {"functionCalls": calls}})
}

pub fn tool_call_cancellation(ids: &[&str]) -> Value {
    json!({"toolCallCancellation": {"ids": ids}})
}
