//! Voice benchmark: the real server (embedded model, Whisper, Piper) on a
//! loopback port, seed 004's binary voice socket, and speech synthesized by
//! Piper streamed in at real-time pace. Prints end of speech -> first reply
//! audio (p50/p99), the STT and TTS real-time factors and the word error rate.
//!
//! `cargo run --release -p colloquy --features local-llm,voice-local --example voice_bench -- [TURNS]`
//! (models from `scripts/setup-models.sh`; run from the repository root).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use colloquy::{config::Config, App};
use colloquy_voice::{pcm::encode_pcm16, resample::resample, wer::word_error_rate};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SENTENCES: &[&str] = &[
    "What should I focus on for this step?",
    "I went for my first run today and it felt great.",
    "How long should I rest between runs?",
    "Can you give me one tip for staying motivated?",
    "I only have twenty minutes tomorrow morning.",
    "What shoes do you recommend for a beginner?",
    "My legs feel sore after yesterday.",
    "Should I run in the rain?",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let turns: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(16);
    let data_dir = tempfile::tempdir()?;
    let config = Config {
        addr: "127.0.0.1:0".parse()?,
        data_dir: data_dir.path().to_path_buf(),
        model: Some("local".into()),
        voice: Some("local".into()),
        jwt_secret: Some("voice-bench-secret-voice-bench-secret".into()),
        max_reply_tokens: 60,
        audio: colloquy::config::AudioConfig {
            models_dir: Some("data/models".into()),
            ..Default::default()
        },
        local: colloquy::config::LocalModelConfig {
            model_path: Some("data/models/SmolLM2-135M-Instruct.Q4_1.gguf".into()),
            ..Default::default()
        },
        ..Config::default()
    };
    let app = App::build(config).await.context("starting the server")?;
    let addr = app.local_addr()?;
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let engines = state.voice.local().context("local voice engines")?.clone();

    // Engine figures, measured directly.
    let mut tts_audio_secs = 0.0;
    let mut tts_secs = 0.0;
    let mut stt_audio_secs = 0.0;
    let mut stt_secs = 0.0;
    let mut wers = Vec::new();
    let mut inputs = Vec::new();
    for sentence in SENTENCES {
        let started = Instant::now();
        let audio = engines.tts.synthesize(sentence)?;
        tts_secs += started.elapsed().as_secs_f64();
        tts_audio_secs += audio.len() as f64 / f64::from(engines.tts.sample_rate());
        let audio = resample(&audio, engines.tts.sample_rate(), 16_000)?;
        let started = Instant::now();
        let text = engines.stt.transcribe(&audio)?;
        stt_secs += started.elapsed().as_secs_f64();
        stt_audio_secs += audio.len() as f64 / 16_000.0;
        wers.push(word_error_rate(sentence, &text));
        inputs.push(audio);
    }

    // A user with a plan step, as seed 004's client has.
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let auth: Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({ "email": "bench@example.com", "password": "correct horse battery" }))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["access_token"].as_str().context("token")?.to_owned();
    let plan: Value = http
        .post(format!("{base}/api/plans"))
        .bearer_auth(&token)
        .json(&json!({ "title": "Run a 5k", "steps": [{ "title": "First run" }] }))
        .send()
        .await?
        .json()
        .await?;
    let step = plan["steps"][0]["id"]
        .as_str()
        .context("step id")?
        .to_owned();

    let mut latencies = Vec::new();
    for turn in 0..turns {
        let url = format!("ws://{addr}/voice/stream/{step}?token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut sink, mut stream) = socket.split();
        let mut input = vec![0.0f32; 16 * 200];
        input.extend(&inputs[turn % inputs.len()]);
        // The user stops speaking at the last audible sample (-40 dBFS), not
        // at the end of the synthesized clip, which trails off in silence.
        let speech_samples = input
            .iter()
            .rposition(|s| s.abs() > 0.01)
            .map_or(input.len(), |i| i + 1);
        input.extend(vec![0.0f32; 16 * 1500]);
        let started = Instant::now();
        let speech_end = started + Duration::from_secs_f64(speech_samples as f64 / 16_000.0);
        let sender = tokio::spawn(async move {
            // Each 20 ms frame leaves when its last sample has been "spoken",
            // as a microphone delivers it.
            let frame = Duration::from_millis(20);
            let mut tick = tokio::time::interval_at((started + frame).into(), frame);
            for frame in input.chunks(320) {
                tick.tick().await;
                if sink
                    .send(Message::Binary(encode_pcm16(frame).into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // Keep the socket open until the reply has been measured.
            tokio::time::sleep(Duration::from_secs(10)).await;
            let _ = sink.close().await;
        });
        let first_audio = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(frame) = stream.next().await {
                if let Ok(Message::Binary(_)) = frame {
                    return Some(Instant::now());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        sender.abort();
        match first_audio {
            Some(at) => {
                let ms = at.saturating_duration_since(speech_end).as_secs_f64() * 1000.0;
                println!("turn {turn:>2}: end of speech -> first reply audio {ms:>6.0} ms");
                latencies.push(ms);
            }
            None => bail!("turn {turn}: no reply audio within 20 s"),
        }
    }
    latencies.sort_by(f64::total_cmp);

    // Where the time went, from the server's own turn timings.
    let conversations: Value = http
        .get(format!("{base}/api/conversations?limit=100"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let mut stages: [Vec<f64>; 3] = Default::default();
    for conversation in conversations["conversations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = conversation["id"].as_str().context("conversation id")?;
        let timings: Value = http
            .get(format!("{base}/api/conversations/{id}/timings"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        for timing in timings["timings"].as_array().into_iter().flatten() {
            let at = |key: &str| timing[key].as_f64();
            if let (Some(end), Some(transcript), Some(token), Some(audio)) = (
                at("speech_end_at"),
                at("transcript_at"),
                at("first_token_at"),
                at("first_audio_at"),
            ) {
                stages[0].push(transcript - end);
                stages[1].push(token - transcript);
                stages[2].push(audio - token);
            }
        }
    }
    let mean_wer = wers.iter().sum::<f64>() / wers.len() as f64;
    println!();
    println!(
        "turns: {turns} (binary voice socket, local model, Whisper tiny.en, Piper joe-medium)"
    );
    println!(
        "end of speech -> first reply audio: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    for (name, values) in [
        "speech end (VAD) -> transcript",
        "transcript -> first token",
        "first token -> first audio",
    ]
    .iter()
    .zip(stages.iter_mut())
    {
        values.sort_by(f64::total_cmp);
        println!(
            "  server timings, {name}: p50 {:.0} ms, p99 {:.0} ms",
            percentile(values, 50.0),
            percentile(values, 99.0)
        );
    }
    println!(
        "  (includes the VAD's end-of-speech silence of {} ms)",
        colloquy_voice::vad::VadConfig::default().silence_duration_ms
    );
    println!(
        "STT real-time factor: {:.3} ({:.1} s of audio)",
        stt_secs / stt_audio_secs,
        stt_audio_secs
    );
    println!(
        "TTS real-time factor: {:.3} ({:.1} s of audio)",
        tts_secs / tts_audio_secs,
        tts_audio_secs
    );
    println!(
        "STT word error rate on Piper speech: {:.1}% mean over {} sentences",
        mean_wer * 100.0,
        wers.len()
    );
    Ok(())
}
