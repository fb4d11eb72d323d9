//! One reply on one llama.cpp context: chunked prefill, sampling, incremental
//! UTF-8 decoding, and a cancellation check between every `decode()` call.
//!
//! A context keeps the key/value cache of the tokens it last processed
//! ([`Cached`]). A new prompt that starts with the same tokens (the system
//! instruction, and in a conversation its whole history) reuses them and
//! decodes only the rest, as llama.cpp's own server does: the first token
//! comes sooner and long conversations stop re-reading their past.

use std::{
    hash::{BuildHasher, Hasher},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Instant, SystemTime},
};

use encoding_rs::{CoderResult, Decoder};
use llama_cpp_2::{
    context::LlamaContext, llama_batch::LlamaBatch, sampling::LlamaSampler, token::LlamaToken,
};
use tokio::sync::mpsc;

use super::{
    model::LocalModel,
    tools::{self, CallRule},
};
use crate::provider::{ChatRequest, Completion, FinishReason, ProviderError, StreamEvent, Usage};

/// Prompt tokens per `decode()` during prefill: a cancel lands within one
/// chunk. With SmolLM2's Q4_1 weights, prefill costs nearly as much per token
/// as decoding (measured ~60 tok/s on one busy core at 32 per chunk, ~70 at
/// 64), so small chunks cost little throughput and keep cancellation prompt.
pub(crate) const PREFILL_CHUNK: usize = 32;

/// Tokens considered by the repetition penalty (llama.cpp's default).
const PENALTY_LAST_N: i32 = 64;

/// Candidates kept before top-p: cheap pruning of a 49k-token vocabulary.
const TOP_K: i32 = 40;

/// What a reply sends to the async side.
pub(crate) type EventSender = mpsc::Sender<Result<StreamEvent, ProviderError>>;

/// Sampling and length settings, from [`crate::LocalConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sampling {
    pub(crate) max_tokens: u32,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) repeat_penalty: f32,
    /// Offer a request's tools to the model ([`tools`]).
    pub(crate) tools: bool,
}

/// A queued reply: the request, where its events go, and its cancel flag
/// (raised when the reply stream is dropped).
pub(crate) struct Job {
    pub(crate) request: ChatRequest,
    pub(crate) events: EventSender,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) enqueued_at: Instant,
    /// Only process the prompt into the context's cache, ahead of a reply
    /// that will start with it; nothing is sent.
    pub(crate) prefill_only: bool,
}

impl Job {
    /// The consumer is gone: the stream was dropped or its receiver closed.
    fn is_cancelled(&self) -> bool {
        // A prefill has no listener: only its flag stops it.
        self.cancel.load(Ordering::Relaxed) || (!self.prefill_only && self.events.is_closed())
    }

    /// Send one event, blocking while the consumer is behind (backpressure).
    /// `false` when nobody is listening any more.
    fn send(&self, event: Result<StreamEvent, ProviderError>) -> bool {
        !self.cancel.load(Ordering::Relaxed) && self.events.blocking_send(event).is_ok()
    }
}

/// The tokens whose keys and values a context holds, at positions `0..len`.
#[derive(Debug, Default)]
pub(crate) struct Cached {
    tokens: Vec<LlamaToken>,
}

impl Cached {
    /// Forget everything (after a failure the cache's content is unknown).
    pub(crate) fn reset(&mut self, ctx: &mut LlamaContext<'_>) {
        ctx.clear_kv_cache();
        self.tokens.clear();
    }

    /// Keep the longest prefix shared with `prompt`, but always leave at
    /// least its last token to decode (its logits pick the first reply
    /// token). Returns how many prompt tokens are already in the cache.
    fn keep_prefix_of(&mut self, ctx: &mut LlamaContext<'_>, prompt: &[LlamaToken]) -> usize {
        let shared = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(cached, new)| cached == new)
            .count()
            .min(prompt.len().saturating_sub(1));
        let trimmed = u32::try_from(shared)
            .ok()
            .and_then(|from| ctx.clear_kv_cache_seq(None, Some(from), None).ok())
            .unwrap_or(false);
        if !trimmed {
            self.reset(ctx);
            return 0;
        }
        self.tokens.truncate(shared);
        shared
    }
}

/// How a reply ended, for the worker's log line.
#[derive(Debug)]
pub(crate) enum Outcome {
    Finished { prompt: usize, generated: u32 },
    Prefilled { prompt: usize, reused: usize },
    Cancelled,
    Failed,
}

/// Generate the reply for `job` on `ctx`, streaming each token as it comes.
pub(crate) fn run(
    model: &LocalModel,
    ctx: &mut LlamaContext<'_>,
    cached: &mut Cached,
    settings: Sampling,
    job: &Job,
) -> Outcome {
    match generate(model, ctx, cached, settings, job) {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::warn!(%error, "local generation failed");
            cached.reset(ctx);
            job.send(Err(error));
            Outcome::Failed
        }
    }
}

fn generate(
    model: &LocalModel,
    ctx: &mut LlamaContext<'_>,
    cached: &mut Cached,
    settings: Sampling,
    job: &Job,
) -> Result<Outcome, ProviderError> {
    if job.is_cancelled() {
        return Ok(Outcome::Cancelled);
    }
    let n_ctx = ctx.n_ctx() as usize;
    let requested = job.request.max_tokens.unwrap_or(settings.max_tokens).max(1);
    // Leave room for at least half the window of prompt whatever is asked.
    let max_new = (requested as usize).min(n_ctx / 2);
    let offered = if settings.tools {
        job.request.tools.as_slice()
    } else {
        &[]
    };
    let prompt = if offered.is_empty() {
        model.build_prompt(&job.request.messages, n_ctx - max_new)?
    } else {
        let messages = tools::prompt_messages(&job.request.messages, offered);
        model.build_prompt(&messages, n_ctx - max_new)?
    };
    let reused = cached.keep_prefix_of(ctx, &prompt);
    let mut batch = LlamaBatch::new(PREFILL_CHUNK, 1);
    let mut position = i32::try_from(reused).unwrap_or(i32::MAX);
    for chunk in prompt[reused..].chunks(PREFILL_CHUNK) {
        if job.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        batch.clear();
        for &token in chunk {
            let is_last = position as usize == prompt.len() - 1;
            add(&mut batch, token, position, is_last)?;
            position += 1;
        }
        decode(ctx, &mut batch)?;
        cached.tokens.extend_from_slice(chunk);
    }
    tracing::debug!(prompt = prompt.len(), reused, "prompt processed");
    if job.prefill_only {
        return Ok(Outcome::Prefilled {
            prompt: prompt.len(),
            reused,
        });
    }
    let temperature = job.request.temperature.unwrap_or(settings.temperature);
    let mut plain = sampler_chain(model, settings, temperature, None);
    let rule = CallRule::for_request(offered, job.request.tool_choice);
    let mut constrained =
        rule.and_then(|rule| call_sampler(model, settings, temperature, offered, rule));
    let mut shape = match (rule, &constrained) {
        (Some(CallRule::CallOnly), Some(_)) => Shape::Call,
        (Some(CallRule::CallOrText), Some(_)) => Shape::Deciding,
        _ => Shape::Text,
    };

    let vocab = model.model.vocab();
    let mut utf8 = Utf8Stream::new();
    // Text held back while the reply may still be a call.
    let mut held = String::new();
    let mut generated: u32 = 0;
    let finish_reason = loop {
        if job.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let token = match (&shape, constrained.as_mut()) {
            (Shape::Text, _) | (_, None) => plain.sample(ctx, batch.n_tokens() - 1),
            (_, Some(constrained)) => {
                let token = constrained.sample(ctx, batch.n_tokens() - 1);
                // Its repetition penalty must know the token if text follows.
                plain.accept(token);
                token
            }
        };
        if vocab.is_eog(token) {
            break FinishReason::Stop;
        }
        generated += 1;
        let text = utf8.push(model, token);
        match shape {
            Shape::Text => {
                if !text.is_empty() && !job.send(Ok(StreamEvent::Delta(text))) {
                    return Ok(Outcome::Cancelled);
                }
            }
            Shape::Call => held.push_str(&text),
            Shape::Deciding => {
                held.push_str(&text);
                match held.trim_start().chars().next() {
                    None => {}
                    Some('{') => shape = Shape::Call,
                    Some(_) => {
                        shape = Shape::Text;
                        if !job.send(Ok(StreamEvent::Delta(std::mem::take(&mut held)))) {
                            return Ok(Outcome::Cancelled);
                        }
                    }
                }
            }
        }
        if generated as usize >= max_new || position as usize >= n_ctx {
            break FinishReason::Length;
        }
        batch.clear();
        add(&mut batch, token, position, true)?;
        position += 1;
        decode(ctx, &mut batch)?;
        cached.tokens.push(token);
    };
    held.push_str(&utf8.finish());
    let call = match shape {
        Shape::Call => tools::parse_call(&held, offered),
        Shape::Text | Shape::Deciding => None,
    };
    let (finish_reason, tool_calls) = match call {
        Some(call) => (FinishReason::ToolCalls, vec![call]),
        None => {
            // Text, or a call cut off by the token limit: shown as it is.
            if !held.is_empty() && !job.send(Ok(StreamEvent::Delta(held))) {
                return Ok(Outcome::Cancelled);
            }
            (finish_reason, Vec::new())
        }
    };
    let completion = Completion {
        usage: Some(Usage {
            prompt_tokens: prompt.len() as u32,
            completion_tokens: generated,
            cached_prompt_tokens: reused as u32,
        }),
        finish_reason,
        tool_calls,
    };
    if !job.send(Ok(StreamEvent::Finished(completion))) {
        return Ok(Outcome::Cancelled);
    }
    Ok(Outcome::Finished {
        prompt: prompt.len(),
        generated,
    })
}

/// What a reply offered tools turns out to be.
enum Shape {
    /// Nothing visible yet: a call or text may follow.
    Deciding,
    /// A tool call, held to the grammar and held back from the stream.
    Call,
    /// Text, streamed as it comes.
    Text,
}

/// The sampler of a reply held to `rule`; `None` (the reply goes
/// unconstrained, without calls) when the tools' schemas give no grammar.
fn call_sampler(
    model: &LocalModel,
    settings: Sampling,
    temperature: f32,
    offered: &[crate::provider::ToolDefinition],
    rule: CallRule,
) -> Option<LlamaSampler> {
    let grammar = tools::grammar(offered, rule)
        .map_err(|error| tracing::warn!(%error, "no tool-call grammar: tools not offered"))
        .ok()?;
    let sampler = LlamaSampler::grammar(&model.model, &grammar, tools::GRAMMAR_ROOT)
        .map_err(
            |error| tracing::warn!(%error, "the tool-call grammar was refused: tools not offered"),
        )
        .ok()?;
    Some(sampler_chain(model, settings, temperature, Some(sampler)))
}

/// Repetition penalty first (SmolLM2 loops without one), then the grammar
/// if any, then top-k, top-p and temperature before drawing; temperature 0
/// means greedy.
fn sampler_chain(
    model: &LocalModel,
    settings: Sampling,
    temperature: f32,
    grammar: Option<LlamaSampler>,
) -> LlamaSampler {
    let penalties = LlamaSampler::penalties(
        model.model.n_vocab(),
        PENALTY_LAST_N,
        settings.repeat_penalty,
        0.0,
        0.0,
    );
    let mut chain = vec![penalties];
    chain.extend(grammar);
    if temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.extend([
            LlamaSampler::top_k(TOP_K),
            LlamaSampler::top_p(settings.top_p, 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(random_seed()),
        ]);
    }
    LlamaSampler::chain_simple(chain)
}

/// A per-reply seed, so two identical requests need not get identical replies.
fn random_seed() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    hasher.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
    hasher.finish() as u32
}

fn add(
    batch: &mut LlamaBatch<'_>,
    token: LlamaToken,
    position: i32,
    logits: bool,
) -> Result<(), ProviderError> {
    batch
        .add(token, position, &[0], logits)
        .map_err(|e| ProviderError::Model(format!("batch: {e}")))
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>) -> Result<(), ProviderError> {
    ctx.decode(batch)
        .map_err(|e| ProviderError::Model(format!("decode: {e}")))
}

/// Token pieces to text without ever splitting a character: a multi-byte
/// character spread over several tokens comes out with the last of them.
struct Utf8Stream {
    decoder: Decoder,
    piece: Vec<u8>,
}

impl Utf8Stream {
    fn new() -> Self {
        Self {
            decoder: encoding_rs::UTF_8.new_decoder_without_bom_handling(),
            piece: Vec::with_capacity(32),
        }
    }

    /// The complete characters available after `token`.
    fn push(&mut self, model: &LocalModel, token: LlamaToken) -> String {
        self.piece.clear();
        // `special = false`: control tokens render as nothing.
        model
            .model
            .vocab()
            .token_to_piece_into(token, &mut self.piece, false, None);
        self.decode(false)
    }

    /// The complete characters available after the raw bytes `piece`.
    #[cfg(test)]
    fn push_bytes(&mut self, piece: &[u8]) -> String {
        self.piece.clear();
        self.piece.extend_from_slice(piece);
        self.decode(false)
    }

    /// Whatever bytes are pending at the end (an unfinished character
    /// becomes U+FFFD rather than being lost or split).
    fn finish(&mut self) -> String {
        self.piece.clear();
        self.decode(true)
    }

    fn decode(&mut self, last: bool) -> String {
        let capacity = self
            .decoder
            .max_utf8_buffer_length(self.piece.len())
            .unwrap_or(self.piece.len() * 3 + 8);
        let mut text = String::with_capacity(capacity);
        let (result, _read, _replaced) =
            self.decoder.decode_to_string(&self.piece, &mut text, last);
        debug_assert!(matches!(result, CoderResult::InputEmpty));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_tokens_comes_out_whole_with_the_last_piece() {
        let mut utf8 = Utf8Stream::new();
        let snowman = "☃".as_bytes(); // three bytes
        assert_eq!(utf8.push_bytes(b"a"), "a");
        assert_eq!(utf8.push_bytes(&snowman[..1]), "");
        assert_eq!(utf8.push_bytes(&snowman[1..2]), "");
        assert_eq!(utf8.push_bytes(&[snowman[2], b'!']), "☃!");
        assert_eq!(utf8.finish(), "");
    }

    #[test]
    fn an_unfinished_character_at_the_end_becomes_a_replacement_character() {
        let mut utf8 = Utf8Stream::new();
        assert_eq!(utf8.push_bytes(&"é".as_bytes()[..1]), "");
        assert_eq!(utf8.finish(), "\u{FFFD}");
    }
}
