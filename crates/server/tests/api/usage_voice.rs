//! A spoken turn on the voice socket, with the real engines: the seconds
//! heard and spoken are metered with the reply's tokens, and once the
//! plan's voice seconds are spent the next voice socket closes with 1008
//! `Quota exceeded`.

use std::time::Duration;

use colloquy::config::PlanConfig;
use futures::{SinkExt, StreamExt};

use crate::{
    helpers::{spawn_app_with, Socket},
    usage::{model, row, usage},
    voice::{
        models_dir, silence, speech, stream_binary, Received, ONE_VOICE_TEST_AT_A_TIME, QUESTION,
    },
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_turn_meters_voice_in_and_out_and_a_spent_voice_quota_closes_the_socket() {
    let _turn = ONE_VOICE_TEST_AT_A_TIME.lock().await;
    let dir = models_dir();
    let app = spawn_app_with(move |config| {
        config.voice = Some("local".into());
        config.audio.models_dir = Some(dir);
        let plan = PlanConfig {
            voice_seconds_per_day: Some(2),
            ..PlanConfig::default()
        };
        config.plans.insert("free".into(), plan);
    })
    .await;
    let token = app.register("runner@example.com").await;
    let plan = app
        .plan(&token, "Run a 5k", &["Buy shoes", "First run"])
        .await;
    let step = plan["steps"][1]["id"].as_str().unwrap().to_owned();
    let url = app.ws_url(&format!("/voice/stream/{step}?token={token}"));

    let (socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut sink, stream) = socket.split();
    let mut received = Received::spawn(stream);
    let question = speech(&app, QUESTION);
    let question_ms = (question.len() / 16) as i64;
    let mut input = silence(300);
    input.extend(question);
    input.extend(silence(1500));
    stream_binary(&mut sink, &input).await;
    let (audio, first) = received
        .audio_until_quiet(Duration::from_secs(20), Duration::from_secs(5))
        .await;
    assert!(first.is_some(), "the reply was spoken");
    let spoken_ms = (audio.len() / 24) as i64;
    sink.close().await.unwrap();

    let report = usage(&app, &token, "").await;
    let today = row(&report, &model(&app));
    assert_eq!(today["messages"], 1, "{report}");
    assert_eq!(today["prompt_tokens"], 10);
    assert_eq!(today["completion_tokens"], 5);
    let heard = today["voice_ms_in"].as_i64().unwrap();
    assert!(
        (heard - question_ms).abs() < 1000,
        "voice in {heard} ms for {question_ms} ms of speech"
    );
    let played = today["voice_ms_out"].as_i64().unwrap();
    assert!(
        (played - spoken_ms).abs() < 100,
        "voice out {played} ms for {spoken_ms} ms of audio received"
    );
    assert_eq!(report["today"]["voice_seconds"]["left"], 0, "{report}");

    let closed = Socket::connect(&url).await.closed().await;
    assert_eq!(closed.code, Some(1008), "{closed:?}");
    assert_eq!(closed.reason, "Quota exceeded");
}
