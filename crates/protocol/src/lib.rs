//! Colloquy's wire protocol: the JSON events exchanged on the chat sockets
//! (`/api/v1/chat/ws`, `/v2/chat/{session_id}`) and in the `POST /v2/chat`
//! Server-Sent Events fallback.
//!
//! Every event is a JSON object with a `type` field. Server events that belong
//! to a conversation carry a `seq` that grows by exactly one per event, so a
//! client can detect gaps and, later, resume after the last one it saw.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Position of an event in a conversation's event log (starts at 1; 0 means "nothing yet").
pub type Seq = u64;

/// An event a client sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// A user message. `client_id` makes a resend idempotent: the server stores
    /// it once and answers a repeat with the original `ack`. `model` picks one
    /// of `/api/config`'s `models.available` ids for the reply (the default
    /// when absent; an unknown id is refused with `unknown_model`).
    Text {
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Branches: the message this one follows. Absent: the end of the
        /// conversation's active path. An edit names the edited message's
        /// parent (a reply id, or `null` for the first message), so the
        /// edit and the original become alternatives.
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        parent_id: Option<Option<Uuid>>,
    },
    /// Write a new reply to the question the reply `message_id` answered,
    /// kept beside it as an alternative. `model` as for `text`.
    Regenerate {
        message_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Cancel the reply in progress for this conversation.
    Stop,
    /// Application-level heartbeat; answered with [`ServerEvent::Pong`].
    Ping,
    /// Replay every event after `last_seq`, then continue live (the same as
    /// connecting with `?last_seq=`). Answered with `resync_required` when
    /// the gap cannot be replayed exactly.
    Resume { last_seq: Seq },
    /// Microphone audio (seed 001): base64 PCM16 LE mono. Chunks stream
    /// through voice activity detection; a turn starts when the speaker pauses.
    Audio {
        data: String,
        /// Hz; 16000 when absent. Other rates are resampled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sample_rate: Option<u32>,
    },
    /// The client stopped recording: transcribe what was said without
    /// waiting for the end-of-speech silence.
    AudioEnd,
}

/// For `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>` field that may be sent as `null`: absent is `None`,
/// `null` is `Some(None)`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    User,
    Assistant,
    Tool,
}

impl Sender {
    /// The lowercase name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Assistant => "assistant",
            Sender::Tool => "tool",
        }
    }
}

/// How a stored message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Complete,
    /// Generation was stopped (by the user or shutdown) before it finished.
    Interrupted,
    /// The provider failed mid-reply; `content` holds what arrived before.
    Error,
}

impl MessageStatus {
    /// The lowercase name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Error => "error",
        }
    }
}

/// An event the server sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Sent once when a socket is ready: the conversation and the `seq` of its latest event.
    /// A socket opened without a conversation gets a fresh id here that
    /// stays the user's (reconnect with it, also after a server restart);
    /// the conversation is stored, listed and announced (`conversation`
    /// `created`) only once its first message is accepted.
    Ready {
        conversation_id: Uuid,
        last_seq: Seq,
    },
    /// The user message is durably stored. Every socket of the conversation
    /// receives it, so other tabs can show the message too.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        message_id: Uuid,
        seq: Seq,
        content: String,
        /// The id the assistant's reply to this message will carry.
        reply_id: Uuid,
    },
    /// One chunk of an assistant reply.
    Delta {
        message_id: Uuid,
        seq: Seq,
        content: String,
    },
    /// A complete assistant reply (the concatenation of its deltas).
    Message {
        message_id: Uuid,
        seq: Seq,
        content: String,
        sender: Sender,
        status: MessageStatus,
        is_final: bool,
    },
    /// Progress of a tool the model called while writing a reply (seed
    /// 001's tool execution flow); see [`ToolEvent`]. Boxed: it is the
    /// largest event and rare, so every other event stays small.
    Tool(Box<ToolEvent>),
    /// Something went wrong. `seq` is set when the error is part of the
    /// conversation's history (a failed reply), absent for socket-local errors
    /// such as a malformed frame.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
        /// The `client_id` of the `text` event this error refuses, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// With `code: "quota_exceeded"`: which daily limit of which plan
        /// was reached (its fields sit beside `code`).
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        quota: Option<Box<QuotaDetails>>,
    },
    /// Answer to a client [`ClientEvent::Ping`].
    Pong,
    /// Voice activity detection heard the user start speaking.
    SpeechStarted,
    /// What the user said, recognized from their audio. The user message
    /// that follows (its `ack`) carries the same `client_id`; an empty text
    /// means nothing intelligible was heard and no turn starts.
    Transcript {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Synthesized speech of the reply `message_id`: base64 PCM16 LE mono.
    Audio {
        message_id: Uuid,
        data: String,
        sample_rate: u32,
    },
    /// The user spoke over the reply `message_id`: its audio stopped and the
    /// stored reply holds only `content`, what was played (`played_ms`).
    /// Clients drop any of its audio they have not played yet.
    Interrupted {
        message_id: Uuid,
        played_ms: u64,
        content: String,
    },
    /// One of the user's conversations changed elsewhere (another tab,
    /// device or HTTP call); sent to every socket of the user. Not part of
    /// any conversation's log, so it has no `seq`.
    Conversation {
        action: ConversationAction,
        conversation_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

/// A `tool` event: `start` with the `arguments` the model gave, then `end`
/// with the tool's `result` or an `error`, and how long it ran. Calls of
/// one round run concurrently, so their `end` events come in the order
/// they finish; `call_id` pairs them. Stored and numbered like every
/// conversation event, so a resume replays them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolEvent {
    /// The reply being written.
    pub message_id: Uuid,
    pub call_id: String,
    pub name: String,
    pub status: ToolStatus,
    /// `start`: the arguments object (the model's text as a JSON string
    /// when it was not valid JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// `end` of a call that succeeded: what the tool returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// `end` of a call that failed (the model is told the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolError>,
    /// `end`: how long the call ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub seq: Seq,
}

/// Where a tool call is: a [`ToolEvent`] is sent at each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Start,
    End,
}

/// Why a tool call failed: a stable `code` (`unknown_tool`,
/// `invalid_arguments`, `timeout`, `cancelled`, `result_too_large`,
/// `not_found`, `tool_failed`, ...) and a message for people and the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    pub code: String,
    pub message: String,
}

/// The plan limit a refused turn reached (see [`ServerEvent::Error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaDetails {
    /// The user's plan.
    pub plan: String,
    /// The limit reached: `messages_per_day`, `tokens_per_day` or `voice_seconds_per_day`.
    pub limit: String,
    /// That limit's value.
    pub max: u64,
    /// How much of it today's use has taken.
    pub used: u64,
    /// When the quota starts again (the next UTC midnight, RFC 3339).
    pub resets_at: String,
    /// A bigger plan would allow the turn.
    pub upgrade: bool,
}

/// What happened to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationAction {
    /// Stored: its first message was accepted (or it was created over HTTP).
    /// Sockets on that conversation are not told: they have its `ack`.
    Created,
    Renamed,
    Deleted,
}

impl ServerEvent {
    /// The event's position in its conversation's log, if it has one.
    pub fn seq(&self) -> Option<Seq> {
        match self {
            ServerEvent::Ack { seq, .. }
            | ServerEvent::Delta { seq, .. }
            | ServerEvent::Message { seq, .. } => Some(*seq),
            ServerEvent::Tool(tool) => Some(tool.seq),
            ServerEvent::Error { seq, .. } => *seq,
            ServerEvent::Ready { .. }
            | ServerEvent::Pong
            | ServerEvent::Conversation { .. }
            | ServerEvent::SpeechStarted
            | ServerEvent::Transcript { .. }
            | ServerEvent::Audio { .. }
            | ServerEvent::Interrupted { .. } => None,
        }
    }

    /// The event name, as in its `type` field (used for SSE `event:` lines).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerEvent::Ready { .. } => "ready",
            ServerEvent::Ack { .. } => "ack",
            ServerEvent::Delta { .. } => "delta",
            ServerEvent::Tool(_) => "tool",
            ServerEvent::Message { .. } => "message",
            ServerEvent::Error { .. } => "error",
            ServerEvent::Pong => "pong",
            ServerEvent::Conversation { .. } => "conversation",
            ServerEvent::SpeechStarted => "speech_started",
            ServerEvent::Transcript { .. } => "transcript",
            ServerEvent::Audio { .. } => "audio",
            ServerEvent::Interrupted { .. } => "interrupted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_event_parses_with_and_without_client_id() {
        let with: ClientEvent =
            serde_json::from_str(r#"{"type":"text","content":"hi","client_id":"c1"}"#).unwrap();
        assert_eq!(
            with,
            ClientEvent::Text {
                content: "hi".into(),
                client_id: Some("c1".into()),
                model: None,
                parent_id: None,
            }
        );
        let picked: ClientEvent =
            serde_json::from_str(r#"{"type":"text","content":"hi","model":"m"}"#).unwrap();
        assert_eq!(
            picked,
            ClientEvent::Text {
                content: "hi".into(),
                client_id: None,
                model: Some("m".into()),
                parent_id: None,
            }
        );
        let without: ClientEvent =
            serde_json::from_str(r#"{"type":"text","content":"hi"}"#).unwrap();
        assert_eq!(
            without,
            ClientEvent::Text {
                content: "hi".into(),
                client_id: None,
                model: None,
                parent_id: None,
            }
        );
    }

    #[test]
    fn text_parent_id_tells_absent_null_and_an_id_apart() {
        let parse = |json: &str| match serde_json::from_str::<ClientEvent>(json).unwrap() {
            ClientEvent::Text { parent_id, .. } => parent_id,
            other => panic!("not text: {other:?}"),
        };
        let id = Uuid::now_v7();
        assert_eq!(parse(r#"{"type":"text","content":"a"}"#), None);
        assert_eq!(
            parse(r#"{"type":"text","content":"a","parent_id":null}"#),
            Some(None)
        );
        assert_eq!(
            parse(&format!(
                r#"{{"type":"text","content":"a","parent_id":"{id}"}}"#
            )),
            Some(Some(id))
        );
        let edit = ClientEvent::Text {
            content: "a".into(),
            client_id: None,
            model: None,
            parent_id: Some(None),
        };
        let json = serde_json::to_string(&edit).unwrap();
        assert_eq!(serde_json::from_str::<ClientEvent>(&json).unwrap(), edit);
        let regenerate: ClientEvent =
            serde_json::from_str(&format!(r#"{{"type":"regenerate","message_id":"{id}"}}"#))
                .unwrap();
        assert_eq!(
            regenerate,
            ClientEvent::Regenerate {
                message_id: id,
                model: None
            }
        );
    }

    #[test]
    fn audio_events_parse() {
        let audio: ClientEvent =
            serde_json::from_str(r#"{"type":"audio","data":"AAA=","sample_rate":48000}"#).unwrap();
        assert_eq!(
            audio,
            ClientEvent::Audio {
                data: "AAA=".into(),
                sample_rate: Some(48000)
            }
        );
        let end: ClientEvent = serde_json::from_str(r#"{"type":"audio_end"}"#).unwrap();
        assert_eq!(end, ClientEvent::AudioEnd);
        let json = serde_json::to_value(ServerEvent::Interrupted {
            message_id: Uuid::nil(),
            played_ms: 1200,
            content: "Hello".into(),
        })
        .unwrap();
        assert_eq!(json["type"], "interrupted");
        assert_eq!(json["played_ms"], 1200);
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        assert!(serde_json::from_str::<ClientEvent>(r#"{"type":"launch"}"#).is_err());
    }

    #[test]
    fn final_message_serializes_with_is_final_and_type_tag() {
        let id = Uuid::nil();
        let json = serde_json::to_value(ServerEvent::Message {
            message_id: id,
            seq: 7,
            content: "done".into(),
            sender: Sender::Assistant,
            status: MessageStatus::Complete,
            is_final: true,
        })
        .unwrap();
        assert_eq!(json["type"], "message");
        assert_eq!(json["is_final"], true);
        assert_eq!(json["seq"], 7);
        assert_eq!(json["sender"], "assistant");
    }

    #[test]
    fn tool_events_carry_only_the_fields_of_their_status() {
        let start = ServerEvent::Tool(Box::new(ToolEvent {
            message_id: Uuid::nil(),
            call_id: "call_1".into(),
            name: "calculate".into(),
            status: ToolStatus::Start,
            arguments: Some(serde_json::json!({ "expression": "6*7" })),
            result: None,
            error: None,
            duration_ms: None,
            seq: 4,
        }));
        let json = serde_json::to_value(&start).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "tool", "message_id": Uuid::nil(), "call_id": "call_1",
                "name": "calculate", "status": "start",
                "arguments": { "expression": "6*7" }, "seq": 4,
            })
        );
        assert_eq!(start.seq(), Some(4));
        assert_eq!(start.kind(), "tool");
        let failed: ServerEvent = serde_json::from_value(serde_json::json!({
            "type": "tool", "message_id": Uuid::nil(), "call_id": "call_1",
            "name": "calculate", "status": "end", "duration_ms": 3, "seq": 5,
            "error": { "code": "timeout", "message": "too slow" },
        }))
        .unwrap();
        match failed {
            ServerEvent::Tool(tool) => {
                assert_eq!(tool.status, ToolStatus::End);
                assert_eq!(tool.result, None);
                assert_eq!(tool.error.map(|e| e.code).as_deref(), Some("timeout"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn socket_local_error_has_no_seq() {
        let event = ServerEvent::Error {
            code: "bad_request".into(),
            message: "x".into(),
            message_id: None,
            seq: None,
            client_id: None,
            quota: None,
        };
        assert_eq!(event.seq(), None);
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get("seq").is_none());
    }
}
