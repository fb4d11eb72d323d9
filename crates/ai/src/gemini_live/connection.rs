//! One WebSocket connection to the Live API: open it (rustls for `wss://`),
//! send the setup message and wait for `setupComplete`, all within the
//! configured connect time-out.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    connect_async_tls_with_config,
    tungstenite::{
        self, client::IntoClientRequest, protocol::frame::CloseFrame, protocol::WebSocketConfig,
        Message,
    },
    Connector, MaybeTlsStream, WebSocketStream,
};

use super::{
    wire::{
        ClientMessage, Content, ContextWindowCompression, Empty, GenerationConfig,
        PrebuiltVoiceConfig, ServerMessage, SessionResumption, Setup, SpeechConfig, TextPart,
        VoiceConfig,
    },
    LiveConfig, LiveError, LiveSetup,
};

/// An open, set-up connection.
pub(crate) type LiveSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest server message or frame we accept. Audio arrives in chunks of a
/// few kilobytes; anything near this is a fault, not a reply.
pub(crate) const MAX_SERVER_MESSAGE_BYTES: usize = 8 << 20;

/// The TLS client used for `wss://` endpoints: ring as crypto provider and
/// the Mozilla roots, so nothing depends on a process-wide default or on
/// certificates installed on the host.
pub(crate) fn tls_connector() -> Result<Connector, LiveError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| LiveError::Config(format!("TLS setup failed: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// The JSON of the setup message; `handle` resumes an earlier session.
pub(crate) fn setup_json(
    config: &LiveConfig,
    live_setup: &LiveSetup,
    handle: Option<&str>,
) -> Result<String, LiveError> {
    let setup = Setup {
        model: config.model_resource(),
        generation_config: GenerationConfig {
            response_modalities: ["AUDIO"],
            speech_config: config.voice.as_deref().map(|voice_name| SpeechConfig {
                voice_config: VoiceConfig {
                    prebuilt_voice_config: PrebuiltVoiceConfig { voice_name },
                },
            }),
        },
        system_instruction: Content {
            parts: [TextPart {
                text: &live_setup.system_instruction,
            }],
        },
        input_audio_transcription: Empty {},
        output_audio_transcription: Empty {},
        session_resumption: SessionResumption { handle },
        context_window_compression: config.context_window_compression.then_some(
            ContextWindowCompression {
                sliding_window: Empty {},
            },
        ),
        tools: super::tools::declarations(&live_setup.tools),
    };
    ClientMessage::Setup(setup).to_json().map_err(|error| {
        LiveError::Protocol(format!("could not encode the setup message: {error}"))
    })
}

/// Connect, send `setup_json` and wait for `setupComplete`. Errors never
/// contain the key.
pub(crate) async fn open(
    config: &LiveConfig,
    connector: &Connector,
    setup_json: &str,
) -> Result<LiveSocket, LiveError> {
    let attempt = async {
        let request = config
            .url_with_key()
            .into_client_request()
            .map_err(|error| LiveError::Config(format!("bad Live endpoint URL: {error}")))?;
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_SERVER_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_SERVER_MESSAGE_BYTES));
        // Nagle off: small audio frames should leave at once.
        let (mut socket, _response) =
            connect_async_tls_with_config(request, Some(ws_config), true, Some(connector.clone()))
                .await
                .map_err(connect_error)?;
        socket
            .send(Message::text(setup_json))
            .await
            .map_err(|error| LiveError::Connect(format!("could not send setup: {error}")))?;
        wait_for_setup_complete(&mut socket).await?;
        Ok(socket)
    };
    let result = match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(LiveError::Connect(format!(
            "no setupComplete within {:?}",
            config.connect_timeout
        ))),
    };
    result.map_err(|error| error.redacted(&config.api_key))
}

/// Read until `setupComplete`. The service sends nothing else first; a
/// close here is its verdict on the setup (bad model, bad key, bad handle).
async fn wait_for_setup_complete(socket: &mut LiveSocket) -> Result<(), LiveError> {
    loop {
        let bytes = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
            Some(Ok(Message::Close(frame))) => return Err(closed_error(frame)),
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                return Err(LiveError::Connect(format!(
                    "connection failed during setup: {error}"
                )))
            }
            None => {
                return Err(LiveError::Closed {
                    code: 1006,
                    reason: "connection closed before setupComplete".into(),
                })
            }
        };
        match ServerMessage::parse(&bytes) {
            Ok(message) if message.setup_complete => return Ok(()),
            Ok(message) => {
                if let Some(error) = message.error {
                    return Err(server_error(error));
                }
                tracing::debug!("ignoring a Gemini Live message that arrived before setupComplete");
            }
            Err(error) => {
                tracing::warn!(kind = ?error.classify(), "skipping a Gemini Live frame that is not a JSON object");
            }
        }
    }
}

/// A close frame as an error; no frame (or no code) reads as 1005.
pub(crate) fn closed_error(frame: Option<CloseFrame>) -> LiveError {
    match frame {
        Some(frame) => LiveError::Closed {
            code: u16::from(frame.code),
            reason: frame.reason.to_string(),
        },
        None => LiveError::Closed {
            code: 1005,
            reason: "closed without a status code".into(),
        },
    }
}

/// The Google error envelope as an error.
pub(crate) fn server_error(error: super::wire::ServerError) -> LiveError {
    LiveError::Server {
        status: error
            .status
            .or_else(|| error.code.map(|code| code.to_string()))
            .unwrap_or_else(|| "UNKNOWN".into()),
        message: error.message.unwrap_or_default(),
    }
}

/// Describe a failed WebSocket connect without echoing the request URL.
fn connect_error(error: tungstenite::Error) -> LiveError {
    match error {
        tungstenite::Error::Http(response) => LiveError::Connect(format!(
            "the upgrade was answered with HTTP {}",
            response.status()
        )),
        tungstenite::Error::Url(error) => {
            LiveError::Config(format!("bad Live endpoint URL: {error}"))
        }
        other => LiveError::Connect(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn gemini_setup_message_mirrors_the_live_api() {
        let mut config = LiveConfig::new("key", "gemini-live-test");
        config.voice = Some("Puck".into());
        let live_setup = LiveSetup {
            system_instruction: "Be \"kind\".\n".into(),
            tools: Vec::new(),
        };
        let json: Value =
            serde_json::from_str(&setup_json(&config, &live_setup, Some("h-1")).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"setup": {
                "model": "models/gemini-live-test",
                "generationConfig": {
                    "responseModalities": ["AUDIO"],
                    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}
                },
                "systemInstruction": {"parts": [{"text": "Be \"kind\".\n"}]},
                "inputAudioTranscription": {},
                "outputAudioTranscription": {},
                "sessionResumption": {"handle": "h-1"},
                "contextWindowCompression": {"slidingWindow": {}}
            }})
        );

        config.voice = None;
        config.context_window_compression = false;
        let json: Value =
            serde_json::from_str(&setup_json(&config, &LiveSetup::default(), None).unwrap())
                .unwrap();
        assert_eq!(json["setup"]["sessionResumption"], json!({}));
        assert_eq!(
            json["setup"]["generationConfig"],
            json!({"responseModalities": ["AUDIO"]})
        );
        assert!(json["setup"].get("contextWindowCompression").is_none());
    }

    #[test]
    fn gemini_setup_declares_tools_with_their_json_schema() {
        let config = LiveConfig::new("key", "gemini-live-test");
        let schema = json!({"type": "object", "properties": {"expression": {"type": "string"}},
            "required": ["expression"], "additionalProperties": false});
        let live_setup = LiveSetup {
            system_instruction: String::new(),
            tools: vec![crate::ToolDefinition {
                name: "calculate".into(),
                description: "Arithmetic.".into(),
                parameters: schema.clone(),
            }],
        };
        let json: Value =
            serde_json::from_str(&setup_json(&config, &live_setup, None).unwrap()).unwrap();
        assert_eq!(
            json["setup"]["tools"],
            json!([{"functionDeclarations": [{
                "name": "calculate",
                "description": "Arithmetic.",
                "parametersJsonSchema": schema,
            }]}])
        );
    }

    #[test]
    fn gemini_tls_connector_builds_without_a_process_default() {
        assert!(matches!(tls_connector(), Ok(Connector::Rustls(_))));
    }
}
