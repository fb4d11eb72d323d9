//! The voice activity detector on real speech (sentences spoken by
//! `espeak-ng`): where utterances start, pause and stop.

mod support;

use colloquy_voice::vad::{VadConfig, VadEvent, VoiceActivityDetector};
use support::{speak, RATE};

fn silence(ms: usize) -> Vec<f32> {
    vec![0.0; ms * RATE as usize / 1000]
}

/// `text` spoken, without the quiet espeak-ng leaves before and after it.
fn spoken(text: &str) -> Vec<f32> {
    let audio = speak(text);
    let loud = |s: &&f32| s.abs() > 0.01;
    let first = audio.iter().position(|s| loud(&s)).unwrap_or(0);
    let last = audio.iter().rposition(|s| loud(&s)).map_or(0, |i| i + 1);
    audio[first..last.max(first)].to_vec()
}

/// Pushes `audio` in 20 ms chunks, as a client streams it.
fn stream(vad: &mut VoiceActivityDetector, audio: &[f32]) -> Vec<VadEvent> {
    audio
        .chunks(RATE as usize / 50)
        .flat_map(|chunk| vad.push(chunk))
        .collect()
}

#[test]
fn a_pause_announces_exactly_the_utterance_that_the_silence_then_ends() {
    let mut vad = VoiceActivityDetector::new(VadConfig::default());
    let mut audio = silence(500);
    audio.extend(speak("I went for my first run today."));
    audio.extend(silence(1_000));
    let events = stream(&mut vad, &audio);
    let [VadEvent::SpeechStarted { .. }, VadEvent::SpeechPaused {
        end_ms: paused_end,
        audio: paused,
    }, VadEvent::SpeechStopped {
        end_ms,
        audio: stopped,
        ..
    }] = events.as_slice()
    else {
        panic!("expected started, paused, stopped: {events:?}");
    };
    assert_eq!(paused_end, end_ms);
    assert_eq!(paused, stopped, "the speculative audio is the final audio");
    assert!(*end_ms > 1_000 && (*end_ms as usize) < audio.len() * 1000 / RATE as usize);
}

#[test]
fn speech_resumed_after_a_short_pause_stays_one_utterance() {
    let mut vad = VoiceActivityDetector::new(VadConfig::default());
    let mut audio = silence(300);
    audio.extend(spoken("Let me think"));
    // Longer than the tail, shorter than the end-of-speech silence.
    audio.extend(silence(250));
    audio.extend(spoken("yes tomorrow morning"));
    audio.extend(silence(800));
    let events = stream(&mut vad, &audio);
    let started = events
        .iter()
        .filter(|e| matches!(e, VadEvent::SpeechStarted { .. }))
        .count();
    let stops: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::SpeechStopped { end_ms, audio, .. } => Some((*end_ms, audio.len())),
            _ => None,
        })
        .collect();
    let pauses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::SpeechPaused { end_ms, audio } => Some((*end_ms, audio.len())),
            _ => None,
        })
        .collect();
    assert_eq!((started, stops.len()), (1, 1), "{events:?}");
    // The pause in the middle was announced too, but with other audio: a
    // transcript started there must not be used for the whole utterance.
    assert!(pauses.len() >= 2, "{pauses:?}");
    assert!(pauses[..pauses.len() - 1].iter().all(|p| *p != stops[0]));
    assert_eq!(pauses.last(), stops.first());
}

#[test]
fn no_pause_is_announced_when_the_silence_is_as_short_as_the_tail() {
    let config = VadConfig {
        silence_duration_ms: 160,
        ..VadConfig::default()
    };
    let mut vad = VoiceActivityDetector::new(config);
    let mut audio = speak("Should I run in the rain?");
    audio.extend(silence(600));
    let events = stream(&mut vad, &audio);
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, VadEvent::SpeechPaused { .. })),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, VadEvent::SpeechStopped { .. })));
}
