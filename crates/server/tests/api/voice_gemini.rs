//! Seed 004's voice socket through the Gemini Live bridge
//! (`COLLOQUY_VOICE=gemini-live`), against the strict fake Live server the
//! ai crate's tests use: the browser's protocol is unchanged, both sides'
//! transcripts are stored, `interrupted` flushes unplayed audio, a goAway
//! is survived, and a backend 1011 reaches the client as 1011.

use std::{sync::OnceLock, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[path = "../../../ai/tests/support/fake_gemini_live/mod.rs"]
#[allow(dead_code)]
pub mod fake_gemini_live;

use fake_gemini_live::{msg, FakeConfig, FakeLive, Script, Step};

use crate::helpers::{spawn_app_with, TestApp};

const KEY: &str = "test-gemini-key";
const MODEL: &str = "gemini-live-test";

/// The key comes only from the environment; every test here uses the same one.
fn set_key() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| std::env::set_var("GEMINI_API_KEY", KEY));
}

/// 24 kHz PCM16 of `ms` milliseconds (a ramp, so it is not silence).
pub fn reply_audio(ms: usize) -> Vec<u8> {
    (0..ms * 24)
        .flat_map(|i| ((i % 200) as i16 * 100).to_le_bytes())
        .collect()
}

pub async fn gemini_app(scripts: Vec<Script>) -> (TestApp, FakeLive) {
    gemini_app_with(scripts, |_| {}).await
}

pub async fn gemini_app_with(
    scripts: Vec<Script>,
    tweak: impl FnOnce(&mut colloquy::config::Config) + Send + 'static,
) -> (TestApp, FakeLive) {
    set_key();
    let fake = FakeLive::start(FakeConfig {
        api_key: KEY.into(),
        model: format!("models/{MODEL}"),
        scripts,
    })
    .await;
    let endpoint = fake.endpoint();
    let app = spawn_app_with(move |config| {
        config.voice = Some("gemini-live".into());
        config.gemini_live_model = Some(MODEL.into());
        config.gemini_live_endpoint = Some(endpoint);
        tweak(config);
    })
    .await;
    (app, fake)
}

/// A user with a plan step; returns (token, step id).
pub async fn coached_user(app: &TestApp) -> (String, String) {
    let token = app.register("live@example.com").await;
    let plan = app
        .plan(&token, "Run a 5k", &["Buy shoes", "First run"])
        .await;
    (token, plan["steps"][1]["id"].as_str().unwrap().to_owned())
}

pub type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Seed 004's browser: 16 kHz PCM16 binary frames in 20 ms chunks.
pub async fn speak(client: &mut Client, ms: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..ms / 20 {
        tick.tick().await;
        let frame: Vec<u8> = (0..320).flat_map(|i: i16| (i * 50).to_le_bytes()).collect();
        // The server may close first (a backend failure); that ends the talk.
        if client.send(Message::Binary(frame.into())).await.is_err() {
            break;
        }
    }
}

/// Binary bytes received until `quiet` passes without any, and the close if one came.
pub async fn receive_audio(
    client: &mut Client,
    quiet: Duration,
) -> (Vec<u8>, Option<(u16, String)>) {
    let mut audio = Vec::new();
    loop {
        match tokio::time::timeout(quiet, client.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => audio.extend_from_slice(&bytes),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                return (audio, close);
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return (audio, None),
        }
    }
}

/// Open `step`'s voice socket as its user.
pub async fn open_voice(app: &TestApp, token: &str, step: &str) -> Client {
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The id of the user's newest (in these tests: only) conversation.
pub async fn newest_conversation_id(app: &TestApp, token: &str) -> String {
    let list: Value = app
        .get("/api/conversations", token)
        .await
        .json()
        .await
        .unwrap();
    list["conversations"][0]["id"].as_str().unwrap().to_owned()
}

pub async fn stored_messages(app: &TestApp, token: &str) -> Vec<Value> {
    let id = newest_conversation_id(app, token).await;
    app.conversation(id, token).await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn full_exchange_through_the_bridge_is_heard_and_stored() {
    let first = reply_audio(300);
    let second = reply_audio(200);
    let (app, fake) = gemini_app(vec![Script::new(vec![
        Step::AwaitAudioBytes(16_000),
        Step::Send(msg::input_transcription("I went for my first run")),
        Step::Send(msg::audio(&first)),
        Step::Send(msg::output_transcription("Great job! ")),
        Step::Send(msg::audio(&second)),
        Step::Send(msg::output_transcription("Keep going.")),
        Step::Send(msg::generation_complete()),
        Step::Send(msg::turn_complete_with_usage(100, 20)),
    ])])
    .await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    speak(&mut client, 600).await;
    let (audio, close) = receive_audio(&mut client, Duration::from_secs(2)).await;
    assert_eq!(close, None, "the socket stays open until the client leaves");
    assert_eq!(audio, [first, second].concat(), "every byte, in order");

    let setup = fake.connections()[0].clone();
    let instruction = setup.system_instruction().unwrap();
    for needle in ["Run a 5k", "Buy shoes", "First run", "\"total_steps\": 2"] {
        assert!(instruction.contains(needle), "instruction lacks {needle}");
    }
    assert!(setup.audio.len() >= 16_000, "the user's audio went up");
    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["content"], "I went for my first run");
    assert_eq!(messages[1]["content"], "Great job! Keep going.");
    assert_eq!(messages[1]["status"], "complete");
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn interrupted_flushes_unplayed_audio_and_keeps_what_was_heard() {
    let long = reply_audio(4000);
    let (app, _fake) = gemini_app(vec![Script::new(vec![
        Step::AwaitAudioBytes(6_400),
        Step::Send(msg::input_transcription("Tell me everything")),
        Step::Send(msg::output_transcription(
            "one two three four five six seven eight nine ten",
        )),
        Step::Send(msg::audio(&long)),
        // The user spoke over it (Gemini's own VAD): flush.
        Step::AwaitAudioBytes(6_400 + 32_000),
        Step::Send(msg::interrupted()),
        Step::Send(msg::turn_complete()),
    ])])
    .await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = client.split();
    let talker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..150 {
            tick.tick().await;
            let frame: Vec<u8> = (0..320).flat_map(|i: i16| (i * 50).to_le_bytes()).collect();
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        sink
    });
    let mut audio = Vec::new();
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(2), stream.next()).await
    {
        if let Message::Binary(bytes) = frame {
            audio.extend_from_slice(&bytes);
        }
    }
    let _sink = talker.await.unwrap();
    let heard_ms = audio.len() / 48;
    assert!(
        heard_ms < 2500,
        "unplayed audio was flushed: {heard_ms} ms of 4000 ms reached the client"
    );
    assert!(heard_ms > 200, "some audio played: {heard_ms} ms");
    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages[1]["status"], "interrupted", "{messages:?}");
    let content = messages[1]["content"].as_str().unwrap();
    assert!(
        "one two three four five six seven eight nine ten".starts_with(content)
            && content.split_whitespace().count() < 10,
        "stored {content:?}"
    );
}

#[tokio::test]
async fn a_go_away_is_survived_without_the_client_noticing() {
    let before = reply_audio(100);
    let after = reply_audio(150);
    let (app, fake) = gemini_app(vec![
        Script::new(vec![
            Step::Send(msg::resumption_update("handle-1", true)),
            Step::AwaitAudioBytes(3_200),
            Step::Send(msg::audio(&before)),
            Step::Send(msg::go_away("0s")),
            Step::Close(1001, "going away".into()),
        ]),
        Script::new(vec![
            Step::AwaitAudioBytes(3_200),
            Step::Send(msg::input_transcription("still there?")),
            Step::Send(msg::output_transcription("Yes.")),
            Step::Send(msg::audio(&after)),
            Step::Send(msg::turn_complete()),
        ]),
    ])
    .await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    speak(&mut client, 800).await;
    let (audio, close) = receive_audio(&mut client, Duration::from_secs(2)).await;
    assert_eq!(close, None);
    assert_eq!(audio, [before, after].concat());
    let connections = fake.connections();
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[1].resume_handle().as_deref(), Some("handle-1"));
    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages.last().unwrap()["content"], "Yes.");
}

#[tokio::test]
async fn a_backend_1011_closes_the_socket_with_1011_and_keeps_what_was_said() {
    let (app, _fake) = gemini_app(vec![Script::new(vec![
        Step::AwaitAudioBytes(3_200),
        Step::Send(msg::input_transcription("Hello")),
        Step::Send(msg::output_transcription("Hi there")),
        Step::Close(1011, "Internal error encountered.".into()),
    ])])
    .await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    speak(&mut client, 200).await;
    let (_, close) = receive_audio(&mut client, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1011);
    assert!(reason.contains("internal error"), "{reason}");
    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages[0]["content"], "Hello");
    assert_eq!(messages[1]["content"], "Hi there");
}

#[test]
fn gemini_live_without_a_key_stops_the_start_naming_the_variable() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["serve", "--addr", "127.0.0.1:0", "--model", "none"])
        .arg("--data-dir")
        .arg(data.path())
        .env("COLLOQUY_VOICE", "gemini-live")
        .env_remove("GEMINI_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GEMINI_API_KEY"), "{stderr}");
}

#[tokio::test]
async fn a_second_call_on_the_same_step_continues_its_conversation() {
    let call = |heard: &str, said: &str| {
        Script::new(vec![
            Step::AwaitAudioBytes(16_000),
            Step::Send(msg::input_transcription(heard)),
            Step::Send(msg::output_transcription(said)),
            Step::Send(msg::generation_complete()),
            Step::Send(msg::turn_complete()),
        ])
    };
    let (app, _fake) = gemini_app(vec![
        call("I bought the shoes", "Well done."),
        call("What next?", "Your first run."),
    ])
    .await;
    let (token, step) = coached_user(&app).await;
    for _ in 0..2 {
        let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
        let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        speak(&mut client, 600).await;
        receive_audio(&mut client, Duration::from_secs(1)).await;
        client.close(None).await.unwrap();
    }
    let list: Value = app
        .get("/api/conversations", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["conversations"].as_array().unwrap().len(),
        1,
        "one conversation per step: {list}"
    );
    let contents: Vec<Value> = stored_messages(&app, &token)
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(
        contents,
        [
            "I bought the shoes",
            "Well done.",
            "What next?",
            "Your first run."
        ]
    );
}

#[tokio::test]
async fn a_flood_of_tiny_frames_closes_the_voice_socket() {
    let (app, _fake) = gemini_app(vec![Script::new(vec![Step::AwaitAudioBytes(1_000_000)])]).await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Two bytes a frame keeps far inside the audio budget; the frame count does not.
    for _ in 0..1000 {
        if client
            .send(Message::Binary(vec![0u8, 0].into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (_, close) = receive_audio(&mut client, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1008, "frame rate limit exceeded".to_owned())));
}

#[tokio::test]
async fn voice_sessions_beyond_the_servers_maximum_close_with_1013() {
    let held = || Script::new(vec![Step::AwaitAudioBytes(1_000_000)]);
    let (app, _fake) = gemini_app_with(vec![held(), held()], |config| {
        config.max_voice_sessions = 1;
    })
    .await;
    let (token, step) = coached_user(&app).await;
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (mut first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    speak(&mut first, 100).await;
    let (mut second, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_, close) = receive_audio(&mut second, Duration::from_secs(5)).await;
    assert_eq!(
        close,
        Some((1013, "Voice is busy; try again later".to_owned()))
    );
    // The first one's place frees when it leaves.
    first.close(None).await.unwrap();
    receive_audio(&mut first, Duration::from_secs(2)).await;
    let (mut third, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_, close) = receive_audio(&mut third, Duration::from_millis(500)).await;
    assert_eq!(close, None, "a place was free again");
}
