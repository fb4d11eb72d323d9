//! Whisper's text decoder with key/value caches for both attentions.
//!
//! candle's decoder caches only the cross-attention keys and values, so
//! each step runs the whole token sequence through every layer again and
//! a transcript of n tokens costs O(n²) layer passes. Here every step feeds
//! only the new tokens: self-attention keys and values of earlier positions
//! are kept in a [`DecoderState`], one per window being decoded. The model
//! itself is read-only and may be shared.
//!
//! Same computation as the reference (`whisper/model.py`): pre-norm blocks
//! of causal self-attention, cross-attention over the audio features and a
//! GELU MLP; queries and keys are each scaled by `head_width^-1/4`; the key
//! projections have no bias.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{
    layer_norm, linear, linear_no_bias, LayerNorm, LayerNormConfig, Linear, VarBuilder,
};
use candle_transformers::models::whisper::Config;

/// Weights of one attention (self or cross).
#[derive(Debug, Clone)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
}

impl Attention {
    fn load(width: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(width, width, vb.pp("q_proj"))?,
            key: linear_no_bias(width, width, vb.pp("k_proj"))?,
            value: linear(width, width, vb.pp("v_proj"))?,
            out: linear(width, width, vb.pp("out_proj"))?,
        })
    }
}

#[derive(Debug, Clone)]
struct Block {
    self_attn: Attention,
    self_attn_ln: LayerNorm,
    cross_attn: Attention,
    cross_attn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

/// Keys and values `(1, heads, positions, head_width)`; keys pre-scaled.
#[derive(Debug, Clone)]
struct KeyValues {
    keys: Tensor,
    values: Tensor,
}

/// What one window's decoding has computed so far.
#[derive(Debug)]
pub(crate) struct DecoderState {
    /// Per layer: the audio features' keys and values.
    cross: Vec<KeyValues>,
    /// Per layer: keys and values of the tokens fed so far.
    own: Vec<Option<KeyValues>>,
    /// Tokens fed so far (the next position).
    position: usize,
}

impl DecoderState {
    /// Tokens fed so far.
    pub(crate) fn position(&self) -> usize {
        self.position
    }
}

/// The text decoder's weights.
#[derive(Debug, Clone)]
pub(crate) struct TextDecoder {
    embeddings: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    heads: usize,
}

fn norm(width: usize, vb: VarBuilder) -> Result<LayerNorm> {
    layer_norm(width, LayerNormConfig::from(1e-5), vb)
}

impl TextDecoder {
    /// Loads the decoder of the model `config` describes from Hugging Face
    /// names under `vb` (the `model.decoder` prefix), sharing the tensors.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let (vocab, width, heads) = (
            config.vocab_size,
            config.d_model,
            config.decoder_attention_heads,
        );
        if heads == 0 || !width.is_multiple_of(heads) {
            candle_core::bail!("width {width} is not divisible into {heads} heads");
        }
        let blocks = (0..config.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Block {
                    self_attn: Attention::load(width, vb.pp("self_attn"))?,
                    self_attn_ln: norm(width, vb.pp("self_attn_layer_norm"))?,
                    cross_attn: Attention::load(width, vb.pp("encoder_attn"))?,
                    cross_attn_ln: norm(width, vb.pp("encoder_attn_layer_norm"))?,
                    fc1: linear(width, 4 * width, vb.pp("fc1"))?,
                    fc2: linear(4 * width, width, vb.pp("fc2"))?,
                    mlp_ln: norm(width, vb.pp("final_layer_norm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: vb.get((vocab, width), "embed_tokens.weight")?,
            positions: vb.get(
                (config.max_target_positions, width),
                "embed_positions.weight",
            )?,
            blocks,
            ln: norm(width, vb.pp("layer_norm"))?,
            heads,
        })
    }

    /// Most tokens one window can hold.
    pub(crate) fn max_positions(&self) -> usize {
        self.positions.dim(0).unwrap_or(0)
    }

    /// The token embeddings `(vocab, width)`, also the output projection.
    pub(crate) fn embeddings(&self) -> &Tensor {
        &self.embeddings
    }

    /// Starts decoding a window: computes every layer's cross-attention
    /// keys and values from the encoder output `(1, frames, width)`.
    pub(crate) fn start(&self, features: &Tensor) -> Result<DecoderState> {
        let cross = self
            .blocks
            .iter()
            .map(|block| {
                let attn = &block.cross_attn;
                Ok(KeyValues {
                    keys: self.scaled_heads(&attn.key.forward(features)?)?,
                    values: self.heads_of(&attn.value.forward(features)?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            own: vec![None; self.blocks.len()],
            cross,
            position: 0,
        })
    }

    /// Feeds `tokens` after those already fed and returns the final hidden
    /// states `(1, tokens, width)` of these positions.
    pub(crate) fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
        let count = tokens.len();
        if count == 0 || state.position + count > self.max_positions() {
            candle_core::bail!(
                "{count} tokens at position {} exceed the decoder's {} positions",
                state.position,
                self.max_positions()
            );
        }
        let device = self.embeddings.device();
        let ids = Tensor::new(tokens, device)?;
        let mut x = self
            .embeddings
            .index_select(&ids, 0)?
            .add(&self.positions.narrow(0, state.position, count)?)?
            .unsqueeze(0)?;
        let mask = causal_mask(count, state.position, device)?;
        for ((block, own), cross) in self
            .blocks
            .iter()
            .zip(state.own.iter_mut())
            .zip(state.cross.iter())
        {
            let h = block.self_attn_ln.forward(&x)?;
            let attn = &block.self_attn;
            let fresh = KeyValues {
                keys: self.scaled_heads(&attn.key.forward(&h)?)?,
                values: self.heads_of(&attn.value.forward(&h)?)?,
            };
            let all = match own.take() {
                Some(past) => KeyValues {
                    keys: Tensor::cat(&[&past.keys, &fresh.keys], 2)?,
                    values: Tensor::cat(&[&past.values, &fresh.values], 2)?,
                },
                None => fresh,
            };
            let q = self.scaled_heads(&attn.query.forward(&h)?)?;
            let out = attend(&q, &all, mask.as_ref())?;
            *own = Some(all);
            x = (x + attn.out.forward(&out)?)?;

            let h = block.cross_attn_ln.forward(&x)?;
            let attn = &block.cross_attn;
            let q = self.scaled_heads(&attn.query.forward(&h)?)?;
            let out = attend(&q, cross, None)?;
            x = (x + attn.out.forward(&out)?)?;

            let h = block.mlp_ln.forward(&x)?;
            x = (x + block.fc2.forward(&block.fc1.forward(&h)?.gelu()?)?)?;
        }
        state.position += count;
        self.ln.forward(&x)
    }

    /// `(1, n, width)` -> `(1, heads, n, head_width)`.
    fn heads_of(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, width) = x.dims3()?;
        x.reshape((batch, n, self.heads, width / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Split into heads and scaled by `head_width^-1/4`.
    fn scaled_heads(&self, x: &Tensor) -> Result<Tensor> {
        let head_width = x.dim(D::Minus1)? / self.heads;
        self.heads_of(x)? * (head_width as f64).powf(-0.25)
    }
}

/// Scaled dot-product attention of `q` `(1, heads, n, hw)` over `kv`,
/// merged back to `(1, n, width)`.
fn attend(q: &Tensor, kv: &KeyValues, mask: Option<&Tensor>) -> Result<Tensor> {
    let mut scores = q.matmul(&kv.keys.t()?)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    weights.matmul(&kv.values)?.transpose(1, 2)?.flatten_from(2)
}

/// For `count` new tokens after `past` cached ones: each may not see the
/// new tokens after it. One token sees everything: no mask.
fn causal_mask(count: usize, past: usize, device: &Device) -> Result<Option<Tensor>> {
    if count == 1 {
        return Ok(None);
    }
    let total = past + count;
    let mask: Vec<f32> = (0..count)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (count, total), device).map(Some)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use candle_core::{DType, Shape};
    use candle_nn::var_builder::SimpleBackend;
    use candle_transformers::models::whisper::model::Whisper;

    use super::*;

    /// Random weights of any requested name and shape, the same tensor each
    /// time a name is asked for, so two models can share them.
    #[derive(Default)]
    struct RandomWeights(Mutex<HashMap<String, Tensor>>);

    impl SimpleBackend for RandomWeights {
        fn get(
            &self,
            shape: Shape,
            name: &str,
            _: candle_nn::Init,
            _: DType,
            device: &Device,
        ) -> Result<Tensor> {
            let mut map = self.0.lock().unwrap();
            if let Some(t) = map.get(name) {
                return Ok(t.clone());
            }
            let t = Tensor::randn(0f32, 0.3, shape, device)?;
            map.insert(name.to_owned(), t.clone());
            Ok(t)
        }

        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
            candle_core::bail!("no shape for {name}")
        }

        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    /// A small model: the decoder's shape as given, a one-layer encoder.
    fn tiny_config(
        vocab: usize,
        width: usize,
        layers: usize,
        heads: usize,
        positions: usize,
    ) -> Config {
        Config {
            num_mel_bins: 4,
            max_source_positions: 6,
            d_model: width,
            encoder_attention_heads: heads,
            encoder_layers: 1,
            vocab_size: vocab,
            max_target_positions: positions,
            decoder_attention_heads: heads,
            decoder_layers: layers,
            suppress_tokens: Vec::new(),
        }
    }

    #[test]
    fn cached_steps_match_the_full_sequence_decoder() {
        let config = tiny_config(11, 8, 2, 2, 8);
        let backend: Box<dyn SimpleBackend> = Box::new(RandomWeights::default());
        let vb = VarBuilder::from_backend(backend, DType::F32, Device::Cpu);
        let mut reference = Whisper::load(&vb, config.clone()).unwrap();
        let ours = TextDecoder::load(vb.pp("model.decoder"), &config).unwrap();
        let features = Tensor::randn(0f32, 1.0, (1, 5, 8), &Device::Cpu).unwrap();

        let tokens = [3u32, 7, 1, 9, 4];
        let mut state = ours.start(&features).unwrap();
        // The prompt in one step, then one token per step, as `greedy` does.
        let mut outputs = vec![ours.step(&mut state, &tokens[..2]).unwrap()];
        for token in &tokens[2..] {
            outputs.push(ours.step(&mut state, &[*token]).unwrap());
        }
        assert_eq!(state.position(), tokens.len());
        let ours = Tensor::cat(&outputs, 1).unwrap();

        let input = Tensor::new(&tokens[..], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected = reference.decoder.forward(&input, &features, true).unwrap();
        assert_eq!(ours.dims(), expected.dims());
        let max_abs =
            |t: &Tensor| -> f32 { t.abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        let diff = max_abs(&(ours - &expected).unwrap());
        let scale = max_abs(&expected);
        assert!(diff <= 1e-4 * scale.max(1.0), "max difference {diff}");
    }

    #[test]
    fn steps_past_the_last_position_are_refused() {
        let backend: Box<dyn SimpleBackend> = Box::new(RandomWeights::default());
        let vb = VarBuilder::from_backend(backend, DType::F32, Device::Cpu);
        let decoder = TextDecoder::load(vb, &tiny_config(5, 4, 1, 2, 3)).unwrap();
        let features = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let mut state = decoder.start(&features).unwrap();
        assert!(decoder.step(&mut state, &[]).is_err());
        decoder.step(&mut state, &[1, 2, 3]).unwrap();
        assert!(decoder.step(&mut state, &[4]).is_err());
        // A token outside the vocabulary is an error, not a panic.
        let mut state = decoder.start(&features).unwrap();
        assert!(decoder.step(&mut state, &[99]).is_err());
        assert!(TextDecoder::load(
            VarBuilder::from_backend(Box::new(RandomWeights::default()), DType::F32, Device::Cpu),
            &tiny_config(5, 4, 1, 3, 3)
        )
        .is_err());
    }

    #[test]
    fn the_mask_hides_later_new_tokens_only() {
        let mask = causal_mask(2, 3, &Device::Cpu).unwrap().unwrap();
        let rows: Vec<Vec<f32>> = mask.to_vec2().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(rows, [[0.0, 0.0, 0.0, 0.0, inf], [0.0, 0.0, 0.0, 0.0, 0.0]]);
        assert!(causal_mask(1, 7, &Device::Cpu).unwrap().is_none());
    }
}
