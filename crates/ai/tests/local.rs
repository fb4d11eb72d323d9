//! The embedded model end to end, on the real SmolLM2 file: streaming,
//! cancellation, queue overflow, history trimming and load errors.
//!
//! The model comes from `COLLOQUY_TEST_MODEL` or the workspace's
//! `data/models/` (put there by `scripts/setup-models.sh`). A missing model
//! fails these tests: they never skip silently.

mod common;

use std::time::Duration;

use colloquy_ai::{
    ChatMessage, ChatRequest, FinishReason, LocalConfig, LocalError, LocalProvider, Provider,
    ProviderError, ReplyStream, Role, StreamEvent, Usage,
};
use futures::StreamExt;

/// Generous bound on any one wait, so a hung worker fails the test instead of
/// hanging CI; it is a deadlock guard, not a performance assertion.
const DEADLOCK_GUARD: Duration = Duration::from_secs(120);

fn config(workers: usize, queue_capacity: usize) -> LocalConfig {
    LocalConfig {
        model_path: common::model_path(),
        workers,
        threads_per_worker: 1,
        queue_capacity,
        context_tokens: 1024,
        max_tokens: 96,
        ..LocalConfig::default()
    }
}

fn ask(question: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are a helpful assistant."),
            ChatMessage::new(Role::User, question),
        ],
        ..ChatRequest::default()
    }
}

/// A request whose reply runs long, to be cancelled part-way.
fn long_reply() -> ChatRequest {
    ChatRequest {
        max_tokens: Some(400),
        ..ask("Write a long, detailed story about a dragon who learns to bake bread.")
    }
}

async fn next(stream: &mut ReplyStream) -> Option<Result<StreamEvent, ProviderError>> {
    tokio::time::timeout(DEADLOCK_GUARD, stream.next())
        .await
        .expect("the stream produced nothing for two minutes")
}

/// Read until the first delta arrives: the request is then on a worker.
async fn first_delta(stream: &mut ReplyStream) -> String {
    match next(stream).await {
        Some(Ok(StreamEvent::Delta(text))) => text,
        other => panic!("expected a delta, got {other:?}"),
    }
}

/// Read the whole reply: its deltas, then the completion's usage and reason.
async fn collect(mut stream: ReplyStream) -> (Vec<String>, Usage, FinishReason) {
    let mut deltas = Vec::new();
    loop {
        match next(&mut stream).await {
            Some(Ok(StreamEvent::Delta(text))) => deltas.push(text),
            Some(Ok(StreamEvent::Finished(done))) => {
                assert!(
                    next(&mut stream).await.is_none(),
                    "nothing follows Finished"
                );
                let usage = done.usage.expect("the local model reports usage");
                return (deltas, usage, done.finish_reason);
            }
            Some(Err(error)) => panic!("generation failed: {error}"),
            None => panic!("the stream ended without Finished"),
        }
    }
}

#[tokio::test]
async fn a_reply_streams_english_deltas_and_ends_with_finished() {
    let provider = LocalProvider::load(&config(1, 4)).unwrap();
    assert_eq!(provider.info().provider, "local");
    let request = ChatRequest {
        temperature: Some(0.0),
        ..ask("What is the capital of France?")
    };
    let (deltas, usage, reason) = collect(provider.stream_chat(request).await.unwrap()).await;

    assert!(deltas.len() > 1, "the reply arrives in several deltas");
    assert!(deltas
        .iter()
        .all(|d| !d.is_empty() && !d.contains('\u{FFFD}')));
    let text: String = deltas.concat();
    assert!(text.contains("Paris"), "a coherent answer: {text:?}");
    let words = text.split_whitespace().count();
    let letters = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    assert!(
        words >= 3 && letters * 2 > text.len(),
        "English text: {text:?}"
    );
    assert!(usage.prompt_tokens > 10 && usage.completion_tokens > 0);
    assert!(matches!(reason, FinishReason::Stop | FinishReason::Length));
}

#[tokio::test]
async fn dropping_the_stream_mid_reply_frees_the_worker_for_the_next_request() {
    let provider = LocalProvider::load(&config(1, 4)).unwrap();
    let mut abandoned = provider.stream_chat(long_reply()).await.unwrap();
    first_delta(&mut abandoned).await;
    first_delta(&mut abandoned).await;
    drop(abandoned);

    // The only worker must give up the 400-token reply and take this one.
    let (deltas, usage, _) = collect(provider.stream_chat(ask("Say hello.")).await.unwrap()).await;
    assert!(!deltas.concat().trim().is_empty());
    assert!(usage.completion_tokens > 0);
}

#[tokio::test]
async fn dropping_the_stream_during_prefill_frees_the_worker_for_the_next_request() {
    let provider = LocalProvider::load(&config(1, 4)).unwrap();
    let long_prompt = format!(
        "{} Summarise the above.",
        "Colloquy is a chat server. ".repeat(120)
    );
    // Dropped at once: the worker is queued or mid-prefill (many chunks).
    drop(provider.stream_chat(ask(&long_prompt)).await.unwrap());

    let (deltas, _, _) = collect(provider.stream_chat(ask("Say hello.")).await.unwrap()).await;
    assert!(!deltas.concat().trim().is_empty());
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_overloaded() {
    let provider = LocalProvider::load(&config(1, 1)).unwrap();
    let mut running = provider.stream_chat(long_reply()).await.unwrap();
    first_delta(&mut running).await; // the worker is busy with it
    let waiting = provider.stream_chat(ask("Say hello.")).await.unwrap();

    let refused = provider.stream_chat(ask("Say hello.")).await;
    let error = refused.err().expect("a third request overflows the queue");
    assert!(matches!(error, ProviderError::Overloaded), "{error}");
    assert_eq!(error.code(), "overloaded");

    // Freeing the worker lets the queued request through, in order.
    drop(running);
    let (deltas, _, _) = collect(waiting).await;
    assert!(!deltas.concat().trim().is_empty());
}

#[tokio::test]
async fn a_conversation_longer_than_the_context_still_answers_the_newest_turn() {
    let provider = LocalProvider::load(&LocalConfig {
        context_tokens: 512,
        max_tokens: 64,
        ..config(1, 4)
    })
    .unwrap();
    let filler = "We talked about the weather and the trains at length. ".repeat(30);
    let mut messages = vec![ChatMessage::new(
        Role::System,
        "You are a helpful assistant.",
    )];
    for _ in 0..10 {
        messages.push(ChatMessage::new(Role::User, filler.clone()));
        messages.push(ChatMessage::new(Role::Assistant, filler.clone()));
    }
    messages.push(ChatMessage::new(
        Role::User,
        "What is the capital of France?",
    ));
    let request = ChatRequest {
        messages,
        temperature: Some(0.0),
        ..ChatRequest::default()
    };

    let (deltas, usage, _) = collect(provider.stream_chat(request).await.unwrap()).await;
    assert!(
        usage.prompt_tokens <= 512 - 64,
        "prompt of {}",
        usage.prompt_tokens
    );
    let text = deltas.concat();
    assert!(
        text.contains("Paris"),
        "the newest turn was answered: {text:?}"
    );
}

#[test]
fn a_missing_model_file_names_the_path_and_the_setup_command() {
    let missing = std::env::temp_dir().join("colloquy-no-such-model.gguf");
    let error = LocalProvider::load(&LocalConfig {
        model_path: missing.clone(),
        ..LocalConfig::default()
    })
    .expect_err("loading a missing file fails");
    assert!(
        matches!(error, LocalError::ModelMissing { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("scripts/setup-models.sh"), "{message}");
}

#[test]
fn a_corrupt_model_file_names_the_path_and_the_setup_command() {
    let dir = std::env::temp_dir().join(format!("colloquy-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model").unwrap();
    // A download cut short: a real header, most of the tensors missing.
    let truncated = dir.join("truncated.gguf");
    let head = std::fs::read(common::model_path()).unwrap();
    std::fs::write(&truncated, &head[..head.len() / 3]).unwrap();
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();

    for path in [&garbage, &truncated, &empty] {
        let error = LocalProvider::load(&LocalConfig {
            model_path: path.clone(),
            ..LocalConfig::default()
        })
        .expect_err("loading a corrupt file fails");
        assert!(
            matches!(error, LocalError::ModelInvalid { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("scripts/setup-models.sh"), "{message}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_q4_1_model_is_served_from_a_q8_0_copy_derived_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::copy(common::model_path(), &model).unwrap();
    let config = LocalConfig {
        model_path: model.clone(),
        ..config(1, 1)
    };
    let provider = LocalProvider::load(&config).unwrap();
    let derived = dir.path().join("SmolLM2-135M-Instruct.Q8_0.gguf");
    assert!(derived.exists(), "the Q8_0 copy sits next to the model");
    assert_eq!(provider.info().model, "SmolLM2-135M-Instruct.Q8_0");
    let stream = provider
        .stream_chat(ask("What is the capital of France?"))
        .await
        .unwrap();
    let (deltas, _, _) = collect(stream).await;
    assert!(!deltas.concat().trim().is_empty());
    let written = derived.metadata().unwrap().modified().unwrap();
    drop(LocalProvider::load(&config).unwrap());
    assert_eq!(
        derived.metadata().unwrap().modified().unwrap(),
        written,
        "not converted twice"
    );
    let no_copy = LocalProvider::load(&LocalConfig {
        fast_prefill: false,
        ..config
    })
    .unwrap();
    assert_eq!(no_copy.info().model, "SmolLM2-135M-Instruct.Q4_1");
}

#[tokio::test]
async fn reusing_the_cached_prompt_prefix_changes_no_answer() {
    let provider = LocalProvider::load(&config(1, 2)).unwrap();
    let greedy = |question: &str| ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(24),
        ..ask(question)
    };
    let reply = |request| async {
        let stream = provider.stream_chat(request).await.unwrap();
        collect(stream).await.0.concat()
    };
    // The second run finds the whole prompt in the worker's cache.
    let first = reply(greedy("What is the capital of France?")).await;
    let again = reply(greedy("What is the capital of France?")).await;
    assert_eq!(first, again);
    // A different question shares only the system part, and is answered afresh.
    let other = reply(greedy("Name a primary colour.")).await;
    assert_ne!(other, first);
    let fresh = LocalProvider::load(&config(1, 2)).unwrap();
    let stream = fresh
        .stream_chat(greedy("Name a primary colour."))
        .await
        .unwrap();
    assert_eq!(
        collect(stream).await.0.concat(),
        other,
        "same answer as on a clean context"
    );
}

#[tokio::test]
async fn a_prepared_system_prompt_changes_no_answer_and_never_blocks() {
    let greedy = ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(24),
        ..ask("Name a primary colour.")
    };
    let system = greedy.messages[..1].to_vec();
    let fresh = LocalProvider::load(&config(1, 2)).unwrap();
    let expected = collect(fresh.stream_chat(greedy.clone()).await.unwrap())
        .await
        .0
        .concat();

    // Prefilled ahead (twice: the second finds it cached), then asked.
    let provider = LocalProvider::load(&config(1, 2)).unwrap();
    provider.prepare(system.clone());
    provider.prepare(system);
    let (deltas, usage, _) = collect(provider.stream_chat(greedy).await.unwrap()).await;
    assert_eq!(
        deltas.concat(),
        expected,
        "same answer as on a clean context"
    );
    assert!(usage.completion_tokens > 0);

    // Preparing with a full queue, or nothing, is a no-op, not an error.
    provider.prepare(Vec::new());
    let busy = LocalProvider::load(&config(1, 1)).unwrap();
    let _long = busy.stream_chat(long_reply()).await.unwrap();
    busy.prepare(vec![ChatMessage::new(Role::System, "Be brief.")]);
}

#[tokio::test]
async fn a_follow_up_turn_goes_to_the_worker_holding_its_history() {
    let provider = LocalProvider::load(&config(2, 4)).unwrap();
    let first = ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(24),
        ..ask("Name a primary colour.")
    };
    let (deltas, first_usage, _) =
        collect(provider.stream_chat(first.clone()).await.unwrap()).await;
    // Another conversation meanwhile (same system instruction): it must not
    // displace the first one's history.
    let other = ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(8),
        ..ask("Say hello.")
    };
    collect(provider.stream_chat(other).await.unwrap()).await;

    let mut follow_up = first;
    follow_up
        .messages
        .push(ChatMessage::new(Role::Assistant, deltas.concat()));
    follow_up
        .messages
        .push(ChatMessage::new(Role::User, "And another one?"));
    let (_, usage, _) = collect(provider.stream_chat(follow_up).await.unwrap()).await;
    assert!(
        usage.cached_prompt_tokens >= first_usage.prompt_tokens,
        "the first turn's prompt is read from the cache: {usage:?} after {first_usage:?}"
    );
    assert!(usage.prompt_tokens > usage.cached_prompt_tokens);
}
