//! The Gemini Live client against a strict fake of the service, over real
//! sockets on 127.0.0.1: the full exchange, interruption, resumption across
//! a forced reconnect, a backend failure, configuration errors, and proof
//! that the fake itself refuses what the real service refuses.

mod support;

use std::{sync::Arc, time::Duration};

use colloquy_ai::gemini_live::{
    run_session, LiveChannels, LiveConfig, LiveError, LiveEvent, LiveSetup, LiveUsage,
};
use serde_json::{json, Value};
use support::fake_gemini_live::{msg, rejection, FakeConfig, FakeLive, Script, Step, PATIENCE};
use tokio::{
    sync::{mpsc, Notify},
    task::JoinHandle,
};

const KEY: &str = "test-key-0123456789";
const MODEL: &str = "gemini-live-test";

/// `n` bytes of recognisable 16 kHz PCM16 (a ramp starting at `seed`).
fn pcm(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

async fn spawn_fake(scripts: Vec<Script>) -> FakeLive {
    FakeLive::start(FakeConfig {
        api_key: KEY.into(),
        model: format!("models/{MODEL}"),
        scripts,
    })
    .await
}

fn live_config(fake: &FakeLive) -> LiveConfig {
    let mut config = LiveConfig::new(KEY, MODEL);
    config.endpoint = fake.endpoint();
    config.connect_timeout = Duration::from_secs(5);
    config
}

/// A running `run_session` and the caller's ends of its channels.
struct Caller {
    audio: Option<mpsc::Sender<Vec<u8>>>,
    events: mpsc::Receiver<LiveEvent>,
    task: JoinHandle<Result<(), LiveError>>,
}

impl Caller {
    /// Start a session; `audio_capacity` is the caller's input channel bound.
    fn start(config: LiveConfig, instruction: &str, audio_capacity: usize) -> Caller {
        let (audio_tx, audio_rx) = mpsc::channel(audio_capacity);
        let (events_tx, events_rx) = mpsc::channel(64);
        let (_, tool_results_rx) = mpsc::channel(1);
        let setup = LiveSetup {
            system_instruction: instruction.to_owned(),
            tools: Vec::new(),
        };
        let channels = LiveChannels {
            audio_in: audio_rx,
            tool_results_in: tool_results_rx,
            events_out: events_tx,
        };
        let task = tokio::spawn(async move { run_session(&config, setup, channels).await });
        Caller {
            audio: Some(audio_tx),
            events: events_rx,
            task,
        }
    }

    async fn say(&self, chunk: Vec<u8>) {
        let audio = self.audio.as_ref().expect("input still open");
        tokio::time::timeout(PATIENCE, audio.send(chunk))
            .await
            .expect("the session stopped reading audio")
            .expect("the session ended early");
    }

    async fn next_event(&mut self) -> Option<LiveEvent> {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("timed out waiting for an event")
    }

    /// Events up to and including the first one matching `last`.
    async fn events_until(&mut self, last: impl Fn(&LiveEvent) -> bool) -> Vec<LiveEvent> {
        let mut events = Vec::new();
        loop {
            let event = self
                .next_event()
                .await
                .unwrap_or_else(|| panic!("the session ended; events so far: {events:?}"));
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Close the input and wait for the session to end; the events that
    /// were still on their way, and the result.
    async fn finish(mut self) -> (Vec<LiveEvent>, Result<(), LiveError>) {
        self.audio = None;
        self.outcome().await
    }

    /// Wait for the session to end by itself.
    async fn outcome(mut self) -> (Vec<LiveEvent>, Result<(), LiveError>) {
        let mut rest = Vec::new();
        while let Some(event) = self.next_event().await {
            rest.push(event);
        }
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the session did not end")
            .expect("the session panicked");
        (rest, result)
    }
}

#[tokio::test]
async fn full_exchange_streams_transcripts_audio_turn_end_and_usage() {
    let reply_1 = pcm(4800, 10); // 100 ms at 24 kHz
    let reply_2 = pcm(2400, 90);
    let fake = spawn_fake(vec![Script::new(vec![
        Step::AwaitAudioBytes(6400),
        Step::Send(msg::input_transcription("Hello coach")),
        Step::Send(msg::audio(&reply_1)),
        Step::Send(msg::output_transcription("Hi ")),
        Step::Send(msg::audio(&reply_2)),
        Step::Send(msg::output_transcription("there!")),
        Step::Send(msg::generation_complete()),
        Step::Send(msg::turn_complete_with_usage(120, 45)),
        // What the service still says after the input ended is delivered.
        Step::AwaitAudioStreamEnd,
        Step::Send(msg::output_transcription("Bye.")),
    ])])
    .await;
    let mut caller = Caller::start(live_config(&fake), "You are a coach.", 8);

    let spoken: Vec<Vec<u8>> = (0..4).map(|i| pcm(1600, i * 7)).collect();
    for chunk in &spoken {
        caller.say(chunk.clone()).await;
    }
    let events = caller
        .events_until(|e| matches!(e, LiveEvent::Usage(_)))
        .await;
    assert_eq!(
        events,
        vec![
            LiveEvent::InputTranscript("Hello coach".into()),
            LiveEvent::Audio(reply_1),
            LiveEvent::OutputTranscript("Hi ".into()),
            LiveEvent::Audio(reply_2),
            LiveEvent::OutputTranscript("there!".into()),
            LiveEvent::GenerationComplete,
            LiveEvent::TurnComplete,
            LiveEvent::Usage(LiveUsage {
                prompt_token_count: 120,
                response_token_count: 45,
                total_token_count: 165,
                ..LiveUsage::default()
            }),
        ]
    );

    let (rest, result) = caller.finish().await;
    assert_eq!(rest, vec![LiveEvent::OutputTranscript("Bye.".into())]);
    assert_eq!(result, Ok(()));
    let connections = fake
        .wait_for("the client to close", |c| c[0].client_close.is_some())
        .await;
    let connection = &connections[0];
    assert_eq!(connections.len(), 1);
    assert_eq!(
        connection.audio,
        spoken.concat(),
        "audio arrives whole and in order"
    );
    assert_eq!(connection.audio_chunks, 4);
    assert!(
        connection.audio_stream_end,
        "a clean end sends audioStreamEnd"
    );
    assert_eq!(connection.client_close, Some(1000));
    assert_eq!(connection.rejected, None);
    let setup = connection.setup.as_ref().expect("setup recorded");
    assert_eq!(setup["model"], json!("models/gemini-live-test"));
    assert_eq!(
        setup["generationConfig"]["responseModalities"],
        json!(["AUDIO"])
    );
    assert_eq!(setup["inputAudioTranscription"], json!({}));
    assert_eq!(setup["outputAudioTranscription"], json!({}));
    assert_eq!(setup["sessionResumption"], json!({}));
}

#[tokio::test]
async fn interruption_is_delivered_at_once_and_before_any_later_audio() {
    let old_1 = pcm(960, 1);
    let old_2 = pcm(960, 2);
    let new = pcm(960, 3);
    let release = Arc::new(Notify::new());
    let fake = spawn_fake(vec![Script::new(vec![
        Step::AwaitAudioBytes(3200),
        Step::Send(msg::audio(&old_1)),
        Step::Send(msg::audio(&old_2)),
        Step::Send(msg::interrupted()),
        // Nothing more is sent until the test has seen the interruption, so
        // it must reach the caller on its own, not pushed by later traffic.
        Step::AwaitRelease(release.clone()),
        Step::AwaitAudioBytes(6400),
        Step::Send(msg::audio(&new)),
        Step::Send(msg::turn_complete()),
    ])])
    .await;
    let mut caller = Caller::start(live_config(&fake), "Be brief.", 8);

    caller.say(pcm(3200, 0)).await;
    let before = caller.events_until(|e| *e == LiveEvent::Interrupted).await;
    assert_eq!(
        before,
        vec![
            LiveEvent::Audio(old_1),
            LiveEvent::Audio(old_2),
            LiveEvent::Interrupted
        ]
    );

    release.notify_one();
    caller.say(pcm(3200, 50)).await;
    let after = caller.events_until(|e| *e == LiveEvent::TurnComplete).await;
    assert_eq!(after, vec![LiveEvent::Audio(new), LiveEvent::TurnComplete]);
    let (_, result) = caller.finish().await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn resumes_across_a_forced_reconnect_and_replays_audio_sent_in_the_gap() {
    let gap_gate = Arc::new(Notify::new());
    let instruction = "Coach the user through step 2.";
    let before = pcm(3200, 0);
    let gap: Vec<Vec<u8>> = (0..3).map(|i| pcm(1600, 100 + i)).collect();
    let gap_bytes = gap.iter().map(Vec::len).sum();
    let fake = spawn_fake(vec![
        Script::new(vec![
            Step::AwaitAudioBytes(before.len()),
            Step::Send(msg::resumption_update("handle-1", true)),
            Step::Send(msg::output_transcription("before")),
            Step::Send(msg::turn_complete()),
            // Mid-generation handles are not resumable and must not be used.
            Step::Send(msg::resumption_update("mid-turn-handle", false)),
            Step::Send(msg::go_away("5s")),
            Step::Close(1000, String::new()),
        ]),
        Script {
            hold_setup_complete: Some(gap_gate.clone()),
            steps: vec![
                Step::AwaitAudioBytes(gap_bytes),
                Step::Send(msg::output_transcription("after")),
                Step::Send(msg::turn_complete()),
            ],
        },
    ])
    .await;
    // A one-slot input channel: once a send returns, the session has taken
    // the previous chunk, so the gap audio is provably read during the gap.
    let mut caller = Caller::start(live_config(&fake), instruction, 1);

    caller.say(before.clone()).await;
    let first = caller.events_until(|e| *e == LiveEvent::TurnComplete).await;
    assert_eq!(
        first,
        vec![
            LiveEvent::OutputTranscript("before".into()),
            LiveEvent::TurnComplete
        ]
    );

    // The client has reconnected and waits for setupComplete: speak now.
    fake.wait_for("the resumed setup", |c| {
        c.len() == 2 && c[1].setup.is_some()
    })
    .await;
    for chunk in &gap {
        caller.say(chunk.clone()).await;
    }
    gap_gate.notify_one();

    let second = caller.events_until(|e| *e == LiveEvent::TurnComplete).await;
    assert_eq!(
        second,
        vec![
            LiveEvent::Reconnected,
            LiveEvent::OutputTranscript("after".into()),
            LiveEvent::TurnComplete
        ]
    );
    let (rest, result) = caller.finish().await;
    assert_eq!(rest, vec![]);
    assert_eq!(result, Ok(()), "the caller sees no error");

    let connections = fake
        .wait_for("the resumed connection to close", |c| {
            c[1].client_close.is_some()
        })
        .await;
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[0].audio, before);
    assert_eq!(connections[0].resume_handle(), None);
    assert_eq!(connections[1].resume_handle().as_deref(), Some("handle-1"));
    assert_eq!(
        connections[1].system_instruction().as_deref(),
        Some(instruction),
        "the resumed setup carries the same configuration"
    );
    assert_eq!(
        connections[1].audio,
        gap.concat(),
        "gap audio arrives after resume, in order"
    );
    assert_eq!(connections[1].rejected, None);
}

#[tokio::test]
async fn an_abruptly_dropped_connection_is_resumed_too() {
    let fake = spawn_fake(vec![
        Script::new(vec![
            Step::AwaitAudioBytes(1600),
            Step::Send(msg::resumption_update("handle-7", true)),
            Step::Send(msg::turn_complete()),
            Step::Drop,
        ]),
        Script::new(vec![
            Step::AwaitAudioBytes(1600),
            Step::Send(msg::output_transcription("still here")),
        ]),
    ])
    .await;
    let mut caller = Caller::start(live_config(&fake), "x", 8);
    caller.say(pcm(1600, 0)).await;
    caller.events_until(|e| *e == LiveEvent::TurnComplete).await;
    assert_eq!(caller.next_event().await, Some(LiveEvent::Reconnected));
    caller.say(pcm(1600, 9)).await;
    assert_eq!(
        caller.next_event().await,
        Some(LiveEvent::OutputTranscript("still here".into()))
    );
    let (_, result) = caller.finish().await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        fake.connections()[1].resume_handle().as_deref(),
        Some("handle-7")
    );
}

#[tokio::test]
async fn go_away_makes_the_client_move_before_the_connection_ends() {
    let fake = spawn_fake(vec![
        Script::new(vec![
            Step::AwaitAudioBytes(1600),
            Step::Send(msg::resumption_update("handle-2", true)),
            // No time left and no close from the service: the client must
            // leave by itself.
            Step::Send(msg::go_away("0s")),
        ]),
        Script::new(vec![
            Step::AwaitAudioBytes(1600),
            Step::Send(msg::output_transcription("moved")),
        ]),
    ])
    .await;
    let mut caller = Caller::start(live_config(&fake), "x", 8);
    caller.say(pcm(1600, 0)).await;
    assert_eq!(caller.next_event().await, Some(LiveEvent::Reconnected));
    caller.say(pcm(1600, 1)).await;
    assert_eq!(
        caller.next_event().await,
        Some(LiveEvent::OutputTranscript("moved".into()))
    );
    let (_, result) = caller.finish().await;
    assert_eq!(result, Ok(()));
    let connections = fake
        .wait_for("both connections to close", |c| {
            c.len() == 2 && c.iter().all(|c| c.client_close.is_some())
        })
        .await;
    assert_eq!(connections[0].client_close, Some(1000), "left politely");
    assert_eq!(connections[1].resume_handle().as_deref(), Some("handle-2"));
    assert_eq!(connections[1].audio, pcm(1600, 1));
}

#[tokio::test]
async fn repeated_failed_resumptions_give_up_with_resume_failed() {
    let mut scripts = vec![Script::new(vec![
        Step::Send(msg::resumption_update("handle-3", true)),
        Step::Drop,
    ])];
    // Every resumed connection is set up, then dropped before it says anything.
    scripts.extend((0..3).map(|_| Script::new(vec![Step::Drop])));
    let fake = spawn_fake(scripts).await;
    let caller = Caller::start(live_config(&fake), "x", 8);
    let (events, result) = caller.outcome().await;
    assert_eq!(events, vec![LiveEvent::Reconnected; 3]);
    match result {
        Err(LiveError::ResumeFailed { attempts: 3, .. }) => {}
        other => panic!("expected ResumeFailed after 3 attempts, got {other:?}"),
    }
    assert_eq!(fake.connections().len(), 4, "bounded attempts");
}

#[tokio::test]
async fn an_error_message_from_the_service_ends_the_session() {
    let fake = spawn_fake(vec![Script::new(vec![
        Step::Send(msg::output_transcription("so far")),
        Step::Send(json!({"error": {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED"
        }})),
    ])])
    .await;
    let (events, result) = Caller::start(live_config(&fake), "x", 8).outcome().await;
    assert_eq!(events, vec![LiveEvent::OutputTranscript("so far".into())]);
    assert_eq!(
        result,
        Err(LiveError::Server {
            status: "RESOURCE_EXHAUSTED".into(),
            message: "Resource has been exhausted (e.g. check quota).".into()
        })
    );
}

#[tokio::test]
async fn backend_internal_error_ends_the_session_with_close_code_1011() {
    let fake = spawn_fake(vec![Script::new(vec![
        Step::AwaitAudioBytes(1600),
        // A handle exists, yet an internal error is reported, not resumed.
        Step::Send(msg::resumption_update("handle-1", true)),
        Step::Send(msg::output_transcription("partial")),
        Step::Close(1011, "Internal error occurred.".into()),
    ])])
    .await;
    let mut caller = Caller::start(live_config(&fake), "x", 8);
    caller.say(pcm(1600, 0)).await;

    let first = caller.next_event().await;
    assert_eq!(first, Some(LiveEvent::OutputTranscript("partial".into())));
    let (rest, result) = caller.outcome().await;
    assert_eq!(rest, vec![], "nothing after the error");
    let error = result.expect_err("the session fails");
    assert_eq!(
        error,
        LiveError::Closed {
            code: 1011,
            reason: "Internal error occurred.".into()
        }
    );
    assert_eq!(
        error.user_message(),
        "The voice service had an internal error; please try again"
    );
    assert_eq!(fake.connections().len(), 1, "no reconnect after 1011");
}

#[tokio::test]
async fn system_instruction_arrives_verbatim() {
    let instruction = "You are Colloquy's coach.\n\
        Step 2 of 5: \"Draft the plan\" — {keep it short}, \\ no markdown.\n\
        Nutzer: Jürgen 👋\t(tab)";
    let fake = spawn_fake(vec![]).await;
    let caller = Caller::start(live_config(&fake), instruction, 8);
    fake.wait_for("setup", |c| c.first().is_some_and(|c| c.setup.is_some()))
        .await;
    let (_, result) = caller.finish().await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        fake.connections()[0].system_instruction().as_deref(),
        Some(instruction)
    );
}

#[tokio::test]
async fn the_caller_dropping_its_events_ends_the_session_cleanly() {
    let fake = spawn_fake(vec![]).await;
    let mut caller = Caller::start(live_config(&fake), "x", 8);
    fake.wait_for("setupComplete", |c| {
        c.first().is_some_and(|c| c.setup_complete_sent)
    })
    .await;
    caller.events.close();
    let result = tokio::time::timeout(PATIENCE, caller.task)
        .await
        .expect("the session did not end")
        .expect("no panic");
    assert_eq!(result, Ok(()));
    let connections = fake
        .wait_for("the client's close", |c| c[0].client_close.is_some())
        .await;
    assert_eq!(connections[0].client_close, Some(1000));
}

#[tokio::test]
async fn a_wrong_model_is_refused_by_the_service_with_1008() {
    let fake = spawn_fake(vec![]).await;
    let mut config = live_config(&fake);
    config.model = "gemini-nonexistent".into();
    let caller = Caller::start(config, "x", 8);
    let (_, result) = caller.outcome().await;
    match result {
        Err(LiveError::Closed { code: 1008, reason }) => {
            assert!(
                reason.contains("models/gemini-nonexistent is not found"),
                "{reason}"
            )
        }
        other => panic!("expected a 1008 close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_never_echoed() {
    let fake = spawn_fake(vec![]).await;
    let mut config = live_config(&fake);
    config.api_key = "wrong-key-secret".into();
    let (_, result) = Caller::start(config, "x", 8).outcome().await;
    let error = result.expect_err("refused");
    assert!(
        matches!(error, LiveError::Closed { code: 1008, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong-key-secret"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connect_error() {
    // Bind and drop, so the port is (almost certainly) closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut config = LiveConfig::new(KEY, MODEL);
    config.endpoint = format!("ws://127.0.0.1:{port}/live");
    let (_, result) = Caller::start(config, "x", 8).outcome().await;
    assert!(matches!(result, Err(LiveError::Connect(_))), "{result:?}");
}

#[test]
fn missing_gemini_api_key_is_an_error_naming_the_variable() {
    let error = LiveConfig::from_vars(None, |_| None).expect_err("no key");
    assert_eq!(error, LiveError::MissingKey);
    assert!(error.to_string().contains("GEMINI_API_KEY"), "{error}");
    assert_eq!(
        error.user_message(),
        "Server configuration error for AI client"
    );
}

#[tokio::test]
async fn run_session_without_a_key_fails_before_connecting() {
    let fake = spawn_fake(vec![]).await;
    let mut config = live_config(&fake);
    config.api_key = String::new();
    let (_, result) = Caller::start(config, "x", 8).outcome().await;
    assert_eq!(result, Err(LiveError::MissingKey));
    assert!(fake.connections().is_empty());
}

// The fake must be as strict as the service, or the tests above prove little.

fn setup_message(model: &str) -> Value {
    json!({"setup": {
        "model": model,
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "systemInstruction": {"parts": [{"text": "x"}]},
    }})
}

fn audio_message(mime: &str, data: &str) -> Value {
    json!({"realtimeInput": {"audio": {"mimeType": mime, "data": data}}})
}

#[tokio::test]
async fn the_fake_rejects_realtime_input_before_setup() {
    let fake = spawn_fake(vec![]).await;
    let url = format!("{}?key={KEY}", fake.endpoint());
    let (code, reason) = rejection(url, vec![audio_message("audio/pcm;rate=16000", "AAA=")]).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("first message must be setup"), "{reason}");
    assert!(!fake.connections()[0].setup_complete_sent);
}

#[tokio::test]
async fn the_fake_is_as_strict_as_the_service() {
    let fake = spawn_fake(vec![]).await;
    let with_key = format!("{}?key={KEY}", fake.endpoint());
    let model = format!("models/{MODEL}");
    let good_setup = setup_message(&model);
    let cases: Vec<(&str, String, Vec<Value>, u16, &str)> = vec![
        (
            "no key",
            fake.endpoint(),
            vec![good_setup.clone()],
            1008,
            "unregistered callers",
        ),
        (
            "wrong key",
            format!("{}?key=nope", fake.endpoint()),
            vec![good_setup.clone()],
            1008,
            "API key not valid",
        ),
        (
            "second setup",
            with_key.clone(),
            vec![good_setup.clone(), good_setup.clone()],
            1007,
            "only be sent once",
        ),
        (
            "unknown top-level field",
            with_key.clone(),
            vec![json!({"setup": good_setup["setup"].clone(), "extra": 1})],
            1007,
            "unknown field",
        ),
        (
            "unknown setup field",
            with_key.clone(),
            vec![json!({"setup": {"model": model, "generation_config": {}}})],
            1007,
            "unknown field",
        ),
        (
            "wrong model",
            with_key.clone(),
            vec![setup_message("models/other")],
            1008,
            "not found",
        ),
        (
            "missing model",
            with_key.clone(),
            vec![json!({"setup": {"generationConfig": {"responseModalities": ["AUDIO"]}}})],
            1007,
            "missing field `model`",
        ),
        (
            "text modality",
            with_key.clone(),
            vec![
                json!({"setup": {"model": model, "generationConfig": {"responseModalities": ["TEXT"]}}}),
            ],
            1007,
            "AUDIO",
        ),
        (
            "wrong audio rate",
            with_key.clone(),
            vec![
                good_setup.clone(),
                audio_message("audio/pcm;rate=24000", "AAA="),
            ],
            1007,
            "mimeType",
        ),
        (
            "invalid base64",
            with_key.clone(),
            vec![
                good_setup.clone(),
                audio_message("audio/pcm;rate=16000", "not base64!"),
            ],
            1007,
            "Base64 decoding failed",
        ),
        (
            "unknown handle",
            with_key.clone(),
            vec![json!({"setup": {
                "model": model,
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "sessionResumption": {"handle": "forged"}
            }})],
            1008,
            "resumption handle",
        ),
    ];
    for (name, url, messages, code, reason_part) in cases {
        let (got_code, reason) = rejection(url, messages).await;
        assert_eq!(got_code, code, "{name}: {reason}");
        assert!(reason.contains(reason_part), "{name}: {reason}");
    }

    // A wrong path is refused at the upgrade, like the real endpoint's 404.
    let wrong_path = format!("ws://{}/ws/other?key={KEY}", fake.addr());
    assert!(tokio_tungstenite::connect_async(wrong_path).await.is_err());
}

#[tokio::test]
async fn the_fake_rejects_audio_sent_before_setup_complete() {
    let gate = Arc::new(Notify::new());
    let fake = spawn_fake(vec![Script {
        hold_setup_complete: Some(gate),
        steps: vec![],
    }])
    .await;
    let url = format!("{}?key={KEY}", fake.endpoint());
    let messages = vec![
        setup_message(&format!("models/{MODEL}")),
        audio_message("audio/pcm;rate=16000", "AAA="),
    ];
    let (code, reason) = rejection(url, messages).await;
    assert_eq!(code, 1007);
    assert!(reason.contains("before setupComplete"), "{reason}");
}
