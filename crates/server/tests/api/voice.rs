//! The voice path end to end with the real engines (Whisper and Piper,
//! feature `voice-local`, files from `scripts/setup-models.sh`): speech is
//! synthesized, streamed into the real sockets at real-time pace, and the
//! transcript, the spoken reply, barge-in and the timings are checked.

use std::{path::PathBuf, time::Duration};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use colloquy_voice::{
    pcm::{decode_pcm16, encode_pcm16, rms},
    resample::resample,
    wer::word_error_rate,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    fake_openai::Script,
    helpers::{spawn_app_with, TestApp},
};

/// What the user says in these tests.
pub(crate) const QUESTION: &str = "I went for my first run today and it felt great.";
const SECOND_QUESTION: &str = "How often should I run next week?";
/// Input audio per frame sent: 20 ms at 16 kHz.
const FRAME_SAMPLES: usize = 320;

pub(crate) fn models_dir() -> PathBuf {
    let dir = std::env::var_os("COLLOQUY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"));
    assert!(
        dir.join("whisper-tiny.en").exists() && dir.join("piper").exists(),
        "voice models missing in {}: run scripts/setup-models.sh",
        dir.display()
    );
    dir
}

/// The local-voice tests run one at a time: Whisper and Piper each take a
/// core, and two such tests at once on a small CI machine slow each other's
/// audio past the real-time pace their assertions are about.
pub(crate) static ONE_VOICE_TEST_AT_A_TIME: tokio::sync::Mutex<()> =
    tokio::sync::Mutex::const_new(());

/// A server with the local voice engines, and this test's turn with them
/// (keep the guard alive for the whole test).
pub(crate) async fn voice_app() -> (tokio::sync::MutexGuard<'static, ()>, TestApp) {
    let turn = ONE_VOICE_TEST_AT_A_TIME.lock().await;
    let dir = models_dir();
    let app = spawn_app_with(move |config| {
        config.voice = Some("local".into());
        config.audio.models_dir = Some(dir);
        // Reads /metrics.
        config.admins = vec!["runner@example.com".into()];
    })
    .await;
    (turn, app)
}

/// `text` spoken by the server's own TTS, at 16 kHz.
pub(crate) fn speech(app: &TestApp, text: &str) -> Vec<f32> {
    let tts = &app.state.voice.local().expect("local voice").tts;
    let audio = tts.synthesize_repeatable(text).unwrap();
    resample(&audio, tts.sample_rate(), 16_000).unwrap()
}

pub(crate) fn silence(ms: usize) -> Vec<f32> {
    vec![0.0; ms * 16]
}

/// Deterministic white noise.
fn noise(ms: usize, amplitude: f32) -> Vec<f32> {
    let mut seed: u32 = 0x9e37_79b9;
    (0..ms * 16)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// Transcribe 24 kHz reply audio with the server's STT: proof that it is
/// intelligible speech at the rate it claims.
pub(crate) fn transcribe_reply(app: &TestApp, audio_24k: &[f32]) -> String {
    let stt = &app.state.voice.local().unwrap().stt;
    let audio = resample(audio_24k, 24_000, 16_000).unwrap();
    stt.transcribe(&audio).unwrap()
}

/// Assert that `audio` (24 kHz, as the client got it) says `reply` once.
/// Whisper tiny now and then repeats a reply's last sentence in its
/// transcript; then the audio's length decides: the reply spoken twice over
/// is far longer than its clauses synthesized once each.
fn assert_reply_heard(app: &TestApp, reply: &str, audio: &[f32]) {
    let heard = transcribe_reply(app, audio);
    let wer = word_error_rate(reply, &heard);
    if wer <= 0.2 {
        return;
    }
    let mut splitter = colloquy_voice::clause::ClauseSplitter::new();
    let mut clauses = splitter.push(reply);
    clauses.extend(splitter.finish());
    let once: f64 = clauses
        .iter()
        .map(|clause| speech(app, clause).len() as f64 / 16_000.0)
        .sum();
    let got = audio.len() as f64 / 24_000.0;
    let unrepeated = without_repeated_sentences(&heard);
    let wer_unrepeated = word_error_rate(reply, &unrepeated);
    assert!(
        wer_unrepeated <= 0.2 && got < once * 1.25,
        "reply audio says {heard:?} (WER {wer:.2}): {got:.2} s of audio, its clauses once {once:.2} s"
    );
}

/// `text` without a sentence that repeats the end of the one before it.
fn without_repeated_sentences(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for sentence in text.split_inclusive(['.', '!', '?']) {
        let normal = |s: &str| s.trim().to_lowercase();
        let repeats = |last: &&str| {
            let (last, sentence) = (normal(last), normal(sentence));
            !sentence.is_empty() && last.ends_with(&sentence)
        };
        if kept.last().is_some_and(repeats) {
            continue;
        }
        kept.push(sentence);
    }
    kept.concat()
}

/// Send `samples` as binary frames paced to real time.
pub(crate) async fn stream_binary(
    sink: &mut (impl SinkExt<Message, Error = impl std::fmt::Debug> + Unpin),
    samples: &[f32],
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in samples.chunks(FRAME_SAMPLES) {
        tick.tick().await;
        sink.send(Message::Binary(encode_pcm16(frame).into()))
            .await
            .unwrap();
    }
}

/// Send `samples` as JSON `audio` events of 100 ms, paced to real time.
pub(crate) async fn stream_json(
    sink: &mut (impl SinkExt<Message, Error = impl std::fmt::Debug> + Unpin),
    samples: &[f32],
    rate: u32,
) {
    let per_event = rate as usize / 10;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for chunk in samples.chunks(per_event) {
        tick.tick().await;
        let event = json!({
            "type": "audio",
            "data": BASE64.encode(encode_pcm16(chunk)),
            "sample_rate": rate,
        });
        sink.send(Message::Text(event.to_string().into()))
            .await
            .unwrap();
    }
}

/// A long reply, streamed `delay` per token.
fn long_reply(delay: Duration) -> (Script, String) {
    let text = "Running is a wonderful habit to build. Start slowly and listen to your body. \
                Rest days matter as much as running days. Drink plenty of water every day. \
                Stretch gently after each run. Celebrate every small win along the way.";
    let tokens: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    (Script::slow(&tokens, delay), text.to_owned())
}

async fn voice_conversation(app: &TestApp, token: &str) -> Value {
    let list: Value = app
        .get("/api/conversations", token)
        .await
        .json()
        .await
        .unwrap();
    let id = list["conversations"][0]["id"]
        .as_str()
        .expect("a voice conversation")
        .to_owned();
    app.conversation(id, token).await
}

/// Frames received from the server with their arrival times.
pub(crate) struct Received {
    frames: mpsc::UnboundedReceiver<(Instant, Message)>,
}

impl Received {
    pub(crate) fn spawn(
        mut stream: impl StreamExt<Item = Result<Message, impl std::fmt::Debug>>
            + Unpin
            + Send
            + 'static,
    ) -> Self {
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if tx.send((Instant::now(), frame)).is_err() {
                    break;
                }
            }
        });
        Self { frames }
    }

    /// Binary audio until none has arrived for `quiet`, with the first arrival.
    pub(crate) async fn audio_until_quiet(
        &mut self,
        first_wait: Duration,
        quiet: Duration,
    ) -> (Vec<f32>, Option<Instant>) {
        let mut audio = Vec::new();
        let mut first = None;
        let mut wait = first_wait;
        while let Ok(Some((at, frame))) = tokio::time::timeout(wait, self.frames.recv()).await {
            if let Message::Binary(bytes) = frame {
                first.get_or_insert(at);
                audio.extend(decode_pcm16(&bytes).unwrap());
                wait = quiet;
            }
        }
        (audio, first)
    }

    /// The next JSON event.
    pub(crate) async fn event(&mut self) -> Value {
        loop {
            let (_, frame) = tokio::time::timeout(Duration::from_secs(30), self.frames.recv())
                .await
                .expect("an event in time")
                .expect("socket open");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    /// JSON events up to the first of type `kind` (included).
    pub(crate) async fn events_until(&mut self, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.event().await;
            let done = event["type"] == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// The sending half of a client socket.
pub(crate) type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// A JSON chat socket that speaks its replies (`tts=1`), past its `ready`.
pub(crate) async fn speaking_chat(app: &TestApp, token: &str) -> (Sink, Received) {
    let url = app.ws_url(&format!("/api/v1/chat/ws?token={token}&tts=1"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    assert_eq!(received.event().await["type"], "ready");
    (sink, received)
}

pub(crate) fn audio_of(events: &[Value]) -> Vec<f32> {
    events
        .iter()
        .filter(|e| e["type"] == "audio")
        .flat_map(|e| {
            assert_eq!(e["sample_rate"], 24_000);
            decode_pcm16(&BASE64.decode(e["data"].as_str().unwrap()).unwrap()).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_binary_socket_turn_with_context_and_timings() {
    let (_turn, app) = voice_app().await;
    let reply = "Great job on your first run. Keep going at an easy pace.";
    let tokens: Vec<String> = reply.split_inclusive(' ').map(str::to_owned).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    app.upstream
        .push(Script::slow(&tokens, Duration::from_millis(20)));
    let token = app.register("runner@example.com").await;
    let profile = app
        .http
        .patch(app.url("/api/profile"))
        .bearer_auth(&token)
        .json(&json!({ "full_name": "Ada Runner", "user_data": { "goal": "finish a 5k" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
    let plan = app
        .plan(
            &token,
            "Run a 5k",
            &["Buy shoes", "First run", "Run twice a week"],
        )
        .await;
    let step = plan["steps"][1]["id"].as_str().unwrap();

    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    let mut input = silence(300);
    input.extend(speech(&app, QUESTION));
    let speech_end = Instant::now() + Duration::from_millis((input.len() / 16) as u64);
    input.extend(silence(1500));
    stream_binary(&mut sink, &input).await;
    let (audio, first_audio) = received
        // Generous: on a loaded 2-core machine a late clause's synthesis
        // can leave a gap of seconds; the reply must be heard whole.
        .audio_until_quiet(Duration::from_secs(20), Duration::from_secs(5))
        .await;
    let first_audio = first_audio.expect("reply audio");
    eprintln!(
        "binary socket: end of speech -> first reply audio {:?}, {:.2} s of audio",
        first_audio.saturating_duration_since(speech_end),
        audio.len() as f64 / 24_000.0
    );
    assert!(rms(&audio) > 0.01, "reply audio is silent");
    assert_reply_heard(&app, reply, &audio);

    // Both sides stored, the user message being the transcript.
    let conversation = voice_conversation(&app, &token).await;
    assert_eq!(conversation["title"], "Voice: First run");
    let messages = conversation["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let said = messages[0]["content"].as_str().unwrap();
    let wer = word_error_rate(QUESTION, said);
    assert!(wer <= 0.1, "transcript {said:?} (WER {wer:.2})");
    assert_eq!(messages[1]["content"], reply);
    assert_eq!(messages[1]["status"], "complete");

    // The session context reached the model as the system instruction.
    let requests = app.upstream.requests();
    let system = requests[0]["messages"][0]["content"].as_str().unwrap();
    for needle in [
        "Ada Runner",
        "finish a 5k",
        "Run a 5k",
        "Buy shoes",
        "First run",
        "Run twice a week",
        "\"current_order\": 2",
        "\"total_steps\": 3",
    ] {
        assert!(
            system.contains(needle),
            "system instruction lacks {needle}: {system}"
        );
    }

    // Timings: stored in order, and counted in the metrics.
    let id = conversation["id"].as_str().unwrap();
    let timings: Value = app
        .get(&format!("/api/conversations/{id}/timings"), &token)
        .await
        .json()
        .await
        .unwrap();
    let timing = &timings["timings"][0];
    let stamps: Vec<i64> = [
        "speech_end_at",
        "transcript_at",
        "first_token_at",
        "first_audio_at",
        "turn_end_at",
    ]
    .iter()
    .map(|key| {
        timing[key]
            .as_i64()
            .unwrap_or_else(|| panic!("{key} missing: {timing}"))
    })
    .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "timings out of order: {timing}"
    );
    assert_eq!(timing["interrupted"], false);
    // One row for the spoken turn: the turn service's figures merged in.
    assert_eq!(timings["timings"].as_array().unwrap().len(), 1, "{timings}");
    assert_eq!(timing["transport"], "voice");
    assert!(
        timing["received_at"].is_i64() && timing["stored_at"].is_i64(),
        "{timing}"
    );
    let metrics = app.get("/metrics", &token).await.text().await.unwrap();
    assert!(
        metrics.contains("colloquy_voice_speech_end_to_first_audio_seconds_count 1"),
        "{metrics}"
    );
    // The transcript was started at the pause, during the end-of-speech
    // silence, and used.
    assert!(
        metrics.contains("colloquy_voice_stt_speculations_used_total 1"),
        "{metrics}"
    );
    assert_eq!(app.get("/metrics", "bad-token").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_json_audio_gets_transcript_reply_and_speech() {
    let (_turn, app) = voice_app().await;
    let token = app.register("chat@example.com").await;
    let (mut sink, mut received) = speaking_chat(&app, &token).await;
    // 48 kHz input, as a browser captures it: the server resamples.
    let mut input = silence(200);
    input.extend(speech(&app, SECOND_QUESTION));
    input.extend(silence(1000));
    let input_48k = resample(&input, 16_000, 48_000).unwrap();
    stream_json(&mut sink, &input_48k, 48_000).await;
    let events = received.events_until("transcript").await;
    assert!(
        events.iter().any(|e| e["type"] == "speech_started"),
        "{events:?}"
    );
    let transcript = events.last().unwrap();
    let text = transcript["text"].as_str().unwrap();
    let wer = word_error_rate(SECOND_QUESTION, text);
    assert!(wer <= 0.1, "transcript {text:?} (WER {wer:.2})");
    let ack = received.events_until("ack").await.pop().unwrap();
    assert_eq!(ack["client_id"], transcript["client_id"]);
    assert_eq!(ack["content"], text);
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    // The default fake reply, then its audio.
    let mut events = Vec::new();
    let mut final_seen = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(event) = tokio::time::timeout(Duration::from_secs(2), received.event()).await else {
            break;
        };
        final_seen |= event["type"] == "message" && event["message_id"] == reply_id.as_str();
        events.push(event);
    }
    assert!(final_seen, "no final message: {events:?}");
    let audio = audio_of(&events);
    assert!(events
        .iter()
        .filter(|e| e["type"] == "audio")
        .all(|e| e["message_id"] == reply_id.as_str()));
    assert!(
        rms(&audio) > 0.01 && audio.len() > 12_000,
        "reply audio: {} samples",
        audio.len()
    );
    let heard = transcribe_reply(&app, &audio);
    assert!(
        word_error_rate("Hello from the fake.", &heard) <= 0.25,
        "reply audio says {heard:?}"
    );

    // Typed text on a TTS socket is spoken too.
    sink.send(Message::Text(
        json!({"type": "text", "content": "hi"}).to_string().into(),
    ))
    .await
    .unwrap();
    let events = received.events_until("message").await;
    assert!(events.iter().any(|e| e["type"] == "ack"));
    let more = received.events_until("audio").await;
    assert_eq!(more.last().unwrap()["type"], "audio");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_cuts_the_reply_to_what_was_heard() {
    let (_turn, app) = voice_app().await;
    // Slow tokens: the reply is still generating when the user speaks.
    let (script, full_reply) = long_reply(Duration::from_millis(120));
    app.upstream.push(script);
    let token = app.register("barge@example.com").await;
    let (mut sink, mut received) = speaking_chat(&app, &token).await;
    let mut first = speech(&app, QUESTION);
    first.extend(silence(800));
    stream_json(&mut sink, &first, 16_000).await;
    let ack = received.events_until("ack").await.pop().unwrap();
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let before = received.events_until("audio").await;
    let first_audio_at = Instant::now();
    // Let about two seconds play, then speak over it.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut second = speech(&app, SECOND_QUESTION);
    second.extend(silence(800));
    let talk = tokio::spawn(async move {
        stream_json(&mut sink, &second, 16_000).await;
        sink
    });
    let mut events = before;
    events.extend(received.events_until("interrupted").await);
    let interrupted = events.last().unwrap().clone();
    let spoke_at = first_audio_at.elapsed();
    assert_eq!(interrupted["message_id"], reply_id.as_str());
    let content = interrupted["content"].as_str().unwrap();
    let played_ms = interrupted["played_ms"].as_u64().unwrap();
    eprintln!(
        "interrupted after {played_ms} ms played ({spoke_at:?} after first audio): {content:?}"
    );
    assert!(
        played_ms >= 1500 && played_ms <= spoke_at.as_millis() as u64 + 300,
        "played {played_ms} ms"
    );
    assert!(
        !content.is_empty() && content.len() < full_reply.len() / 2,
        "{content:?}"
    );
    assert!(
        full_reply.starts_with(content.trim_end_matches(|c: char| !c.is_alphanumeric())),
        "{content:?} is not a prefix"
    );
    // The stored reply is cut to what was heard, announced as a final message.
    let stored = received.events_until("message").await;
    let cut = stored.iter().rev().find(|e| {
        e["type"] == "message"
            && e["message_id"] == reply_id.as_str()
            && e["status"] == "interrupted"
    });
    let cut = match cut {
        Some(cut) => cut.clone(),
        None => received.events_until("message").await.pop().unwrap(),
    };
    assert_eq!(cut["content"], content, "{cut}");
    let _sink = talk.await.unwrap();
    // The second utterance becomes the next turn.
    let transcript = loop {
        let event = received.event().await;
        if event["type"] == "transcript" {
            break event;
        }
    };
    assert!(word_error_rate(SECOND_QUESTION, transcript["text"].as_str().unwrap()) <= 0.1);
    let conversation = voice_conversation(&app, &token).await;
    let stored_reply = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(stored_reply["status"], "interrupted");
    assert_eq!(stored_reply["content"], content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_blips_do_not_interrupt_and_binary_barge_in_truncates() {
    let (_turn, app) = voice_app().await;
    let (script, full_reply) = long_reply(Duration::from_millis(10));
    app.upstream.push(script);
    let token = app.register("blip@example.com").await;
    let plan = app.plan(&token, "Run a 5k", &["First run"]).await;
    let step = plan["steps"][0]["id"].as_str().unwrap();
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    let mut input = speech(&app, QUESTION);
    input.extend(silence(800));
    stream_binary(&mut sink, &input).await;
    let (_, first) = received
        .audio_until_quiet(Duration::from_secs(20), Duration::from_millis(1))
        .await;
    assert!(first.is_some(), "no reply audio");
    // A 200 ms noise burst and a 200 ms snippet of speech: both shorter than
    // the VAD's minimum speech duration.
    let snippet: Vec<f32> = speech(&app, "Hello hello hello")
        .into_iter()
        .take(200 * 16)
        .collect();
    let mut blips = silence(500);
    blips.extend(noise(200, 0.3));
    blips.extend(silence(700));
    blips.extend(snippet);
    blips.extend(silence(700));
    stream_binary(&mut sink, &blips).await;
    let conversation = voice_conversation(&app, &token).await;
    let reply = &conversation["messages"][1];
    assert_eq!(reply["content"], full_reply, "a blip cut the reply");
    assert_eq!(reply["status"], "complete");

    // Real speech over the reply does interrupt it.
    let mut talk = speech(&app, SECOND_QUESTION);
    talk.extend(silence(600));
    stream_binary(&mut sink, &talk).await;
    drop(sink);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conversation = voice_conversation(&app, &token).await;
    let reply = &conversation["messages"][1];
    assert_eq!(reply["status"], "interrupted", "{reply}");
    let content = reply["content"].as_str().unwrap();
    assert!(content.len() < full_reply.len(), "{content:?}");
    assert!(
        full_reply.starts_with(content.trim_end_matches(|c: char| !c.is_alphanumeric())),
        "{content:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_turns_pay_the_users_message_budget_like_typed_ones() {
    let _turn = ONE_VOICE_TEST_AT_A_TIME.lock().await;
    let dir = models_dir();
    let app = spawn_app_with(move |config| {
        config.voice = Some("local".into());
        config.audio.models_dir = Some(dir);
        config.messages_per_minute_per_user = 1;
    })
    .await;
    let token = app.register("budget@example.com").await;
    let url = app.ws_url(&format!("/api/v1/chat/ws?token={token}"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    assert_eq!(received.event().await["type"], "ready");
    // The one message of this minute is typed...
    sink.send(Message::Text(
        json!({"type": "text", "content": "hi"}).to_string().into(),
    ))
    .await
    .unwrap();
    received.events_until("message").await;
    // ...so the spoken one is refused once transcribed.
    let mut input = speech(&app, SECOND_QUESTION);
    input.extend(silence(1000));
    stream_json(&mut sink, &input, 16_000).await;
    received.events_until("transcript").await;
    let refused = received.events_until("error").await.pop().unwrap();
    assert_eq!(refused["code"], "rate_limited", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_sessions_with_nothing_said_leave_no_conversation() {
    let (_turn, app) = voice_app().await;
    let token = app.register("quiet@example.com").await;
    let plan = app.plan(&token, "Run a 5k", &["Buy shoes"]).await;
    let step = plan["steps"][0]["id"].as_str().unwrap();

    // Seed 004's voice socket: a call in silence, then hang up.
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let received = Received::spawn(stream);
    stream_binary(&mut sink, &silence(600)).await;
    sink.close().await.unwrap();
    drop(received);

    // The chat socket: the mic on, then off, in silence.
    let url = app.ws_url(&format!("/api/v1/chat/ws?token={token}"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    assert_eq!(received.event().await["type"], "ready");
    stream_json(&mut sink, &silence(600), 16_000).await;
    for event in [json!({ "type": "audio_end" }), json!({ "type": "ping" })] {
        sink.send(Message::Text(event.to_string().into()))
            .await
            .unwrap();
    }
    received.events_until("pong").await;
    sink.close().await.unwrap();

    // Both sessions are over (whatever they heard is stored by then).
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.limits.open_sockets() > 0 {
        assert!(Instant::now() < deadline, "sockets still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.conversations(&token).await.is_empty(),
        "nothing was said"
    );
}
