//! Builds candle's Whisper from a CTranslate2 `WhisperSpec` file.
//!
//! candle's model reads Hugging Face tensor names, so each CTranslate2
//! variable is renamed, converted to `f32`, and fused projections are split:
//! self-attention stores query, key and value as one `linear_0` (rows in that
//! order), cross-attention stores key and value as one `linear_1`. The key
//! projection's bias is zero in the file (Whisper has none) and candle does
//! not read it. The model's shape (width, layers, heads, vocabulary) comes
//! from the tensors themselves, so any Whisper size converted the same way
//! loads.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::model::Whisper;
use candle_transformers::models::whisper::Config;

use super::ct2::{self, Ct2File};
use super::decoder::TextDecoder;

/// The spec name CTranslate2 writes for Whisper models.
const WHISPER_SPEC: &str = "WhisperSpec";

/// Loads the model on the CPU: candle's Whisper, whose encoder is used, and
/// our cached text decoder (sharing the tensors, not copying them).
pub(crate) fn load(file: &Ct2File) -> Result<(Whisper, TextDecoder), String> {
    let (tensors, config) = weight_map(file)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let decoder = TextDecoder::load(vb.pp("model.decoder"), &config)
        .map_err(|e| format!("building the decoder: {e}"))?;
    let model = Whisper::load(&vb, config).map_err(|e| format!("building the model: {e}"))?;
    Ok((model, decoder))
}

/// The tensors under candle's names, and the shape they describe.
pub(crate) fn weight_map(file: &Ct2File) -> Result<(HashMap<String, Tensor>, Config), String> {
    if file.spec != WHISPER_SPEC {
        return Err(format!("model spec is {:?}, not {WHISPER_SPEC}", file.spec));
    }
    let config = config(file)?;
    let mut map = Weights {
        file,
        tensors: HashMap::new(),
    };
    map.copy("encoder/conv1/weight", "model.encoder.conv1.weight")?;
    map.copy("encoder/conv1/bias", "model.encoder.conv1.bias")?;
    map.copy("encoder/conv2/weight", "model.encoder.conv2.weight")?;
    map.copy("encoder/conv2/bias", "model.encoder.conv2.bias")?;
    for i in 0..config.encoder_layers {
        let (from, to) = (
            format!("encoder/layer_{i}"),
            format!("model.encoder.layers.{i}"),
        );
        map.self_attention(&from, &to)?;
        map.ffn(&from, &to)?;
    }
    map.norm("encoder/layer_norm", "model.encoder.layer_norm")?;

    map.copy(
        "decoder/embeddings/weight",
        "model.decoder.embed_tokens.weight",
    )?;
    map.copy(
        "decoder/position_encodings/encodings",
        "model.decoder.embed_positions.weight",
    )?;
    for i in 0..config.decoder_layers {
        let (from, to) = (
            format!("decoder/layer_{i}"),
            format!("model.decoder.layers.{i}"),
        );
        map.self_attention(&from, &to)?;
        let (attn, cross) = (format!("{from}/attention"), format!("{to}.encoder_attn"));
        map.linear(&format!("{attn}/linear_0"), &format!("{cross}.q_proj"))?;
        map.split_linear(
            &format!("{attn}/linear_1"),
            &[&format!("{cross}.k_proj"), &format!("{cross}.v_proj")],
        )?;
        map.linear(&format!("{attn}/linear_2"), &format!("{cross}.out_proj"))?;
        map.norm(
            &format!("{attn}/layer_norm"),
            &format!("{to}.encoder_attn_layer_norm"),
        )?;
        map.ffn(&from, &to)?;
    }
    map.norm("decoder/layer_norm", "model.decoder.layer_norm")?;
    Ok((map.tensors, config))
}

/// The model's shape, read from its tensors.
fn config(file: &Ct2File) -> Result<Config, String> {
    let shape = |name: &str| {
        file.get(name)
            .map(|v| v.shape.to_vec())
            .ok_or_else(|| format!("missing tensor {name}"))
    };
    let layers = |side: &str| {
        (0..)
            .take_while(|i| file.contains(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let heads = |side: &str| {
        file.get(&format!("{side}/num_heads"))
            .and_then(|v| v.scalar_int())
            .and_then(|h| usize::try_from(h).ok())
            .filter(|&h| h > 0)
            .ok_or_else(|| format!("missing or invalid {side}/num_heads"))
    };
    let (embeddings, conv1) = (
        shape("decoder/embeddings/weight")?,
        shape("encoder/conv1/weight")?,
    );
    let (source, target) = (
        shape("encoder/position_encodings/encodings")?,
        shape("decoder/position_encodings/encodings")?,
    );
    let (&[vocab_size, d_model], &[_, num_mel_bins, _], &[max_source, _], &[max_target, _]) = (
        embeddings.as_slice(),
        conv1.as_slice(),
        source.as_slice(),
        target.as_slice(),
    ) else {
        return Err("unexpected tensor ranks for a Whisper model".to_owned());
    };
    let config = Config {
        num_mel_bins,
        max_source_positions: max_source,
        d_model,
        encoder_attention_heads: heads("encoder")?,
        encoder_layers: layers("encoder"),
        vocab_size,
        max_target_positions: max_target,
        decoder_attention_heads: heads("decoder")?,
        decoder_layers: layers("decoder"),
        suppress_tokens: Vec::new(),
    };
    let divides = |heads: usize| d_model % heads == 0;
    if config.encoder_layers == 0
        || config.decoder_layers == 0
        || !divides(config.encoder_attention_heads)
        || !divides(config.decoder_attention_heads)
    {
        return Err(format!("inconsistent model shape: {config:?}"));
    }
    Ok(config)
}

/// The renamed tensors being collected.
struct Weights<'a> {
    file: &'a Ct2File,
    tensors: HashMap<String, Tensor>,
}

impl Weights<'_> {
    /// One variable as an `f32` tensor.
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        let v = self
            .file
            .get(name)
            .ok_or_else(|| format!("missing tensor {name}"))?;
        let dtype = match v.dtype {
            ct2::DType::F32 => DType::F32,
            ct2::DType::F16 => DType::F16,
            ct2::DType::BF16 => DType::BF16,
            other => {
                return Err(format!(
                    "tensor {name} is {other:?}; only float weights are supported (not quantized models)"
                ))
            }
        };
        Tensor::from_raw_buffer(v.data, dtype, v.shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| format!("tensor {name}: {e}"))
    }

    fn copy(&mut self, from: &str, to: &str) -> Result<(), String> {
        let t = self.tensor(from)?;
        self.tensors.insert(to.to_owned(), t);
        Ok(())
    }

    fn linear(&mut self, from: &str, to: &str) -> Result<(), String> {
        self.copy(&format!("{from}/weight"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/bias"), &format!("{to}.bias"))
    }

    fn norm(&mut self, from: &str, to: &str) -> Result<(), String> {
        self.copy(&format!("{from}/gamma"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/beta"), &format!("{to}.bias"))
    }

    /// Splits a fused projection into equal row blocks, one per target.
    fn split_linear(&mut self, from: &str, to: &[&str]) -> Result<(), String> {
        for part in ["weight", "bias"] {
            let name = format!("{from}/{part}");
            let fused = self.tensor(&name)?;
            let rows = fused.dims().first().copied().unwrap_or(0);
            if rows == 0 || rows % to.len() != 0 {
                return Err(format!("tensor {name} cannot be split in {}", to.len()));
            }
            let block = rows / to.len();
            for (i, target) in to.iter().enumerate() {
                let piece = fused
                    .narrow(0, i * block, block)
                    .and_then(|t| t.contiguous())
                    .map_err(|e| format!("splitting {name}: {e}"))?;
                self.tensors.insert(format!("{target}.{part}"), piece);
            }
        }
        Ok(())
    }

    fn self_attention(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (attn, dest) = (format!("{from}/self_attention"), format!("{to}.self_attn"));
        self.split_linear(
            &format!("{attn}/linear_0"),
            &[
                &format!("{dest}.q_proj"),
                &format!("{dest}.k_proj"),
                &format!("{dest}.v_proj"),
            ],
        )?;
        self.linear(&format!("{attn}/linear_1"), &format!("{dest}.out_proj"))?;
        self.norm(
            &format!("{attn}/layer_norm"),
            &format!("{to}.self_attn_layer_norm"),
        )
    }

    fn ffn(&mut self, from: &str, to: &str) -> Result<(), String> {
        self.linear(&format!("{from}/ffn/linear_0"), &format!("{to}.fc1"))?;
        self.linear(&format!("{from}/ffn/linear_1"), &format!("{to}.fc2"))?;
        self.norm(
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.final_layer_norm"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stt::whisper::ct2::tests::Writer;
    use candle_core::IndexOp;

    const D: u32 = 8;
    const MELS: u32 = 4;
    const VOCAB: u32 = 12;

    /// A tiny, random-ish Whisper in CTranslate2 form: width 8, 2 heads,
    /// one layer on each side. Query rows of fused projections hold 1, key
    /// rows 2, value rows 3, so the split can be checked.
    fn tiny_model() -> Vec<u8> {
        let ramp = |n: u32| {
            (0..n)
                .map(|i| ((i % 7) as f32 - 3.0) * 0.05)
                .collect::<Vec<_>>()
        };
        let fill = |n: u32, v: f32| vec![v; n as usize];
        let fused = |parts: &[f32]| {
            parts
                .iter()
                .flat_map(|&v| vec![v; (D * D) as usize])
                .collect::<Vec<_>>()
        };
        let mut w = Writer::default()
            .f32s("encoder/conv1/weight", &[D, MELS, 3], &ramp(D * MELS * 3))
            .f32s("encoder/conv1/bias", &[D], &fill(D, 0.0))
            .f32s("encoder/conv2/weight", &[D, D, 3], &ramp(D * D * 3))
            .f32s("encoder/conv2/bias", &[D], &fill(D, 0.0))
            .f32s(
                "encoder/position_encodings/encodings",
                &[6, D],
                &fill(6 * D, 0.0),
            )
            .f32s("decoder/embeddings/weight", &[VOCAB, D], &ramp(VOCAB * D))
            .f32s(
                "decoder/position_encodings/encodings",
                &[8, D],
                &ramp(8 * D),
            )
            .var("encoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec())
            .var("decoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec())
            .alias("decoder/projection/weight", "decoder/embeddings/weight");
        let norm = |w: Writer, p: &str| {
            w.f32s(&format!("{p}/gamma"), &[D], &fill(D, 1.0)).f32s(
                &format!("{p}/beta"),
                &[D],
                &fill(D, 0.0),
            )
        };
        let linear = |w: Writer, p: &str, out: u32, inp: u32| {
            w.f32s(&format!("{p}/weight"), &[out, inp], &ramp(out * inp))
                .f32s(&format!("{p}/bias"), &[out], &fill(out, 0.0))
        };
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            w = w
                .f32s(
                    &format!("{l}/self_attention/linear_0/weight"),
                    &[3 * D, D],
                    &fused(&[1.0, 2.0, 3.0]),
                )
                .f32s(
                    &format!("{l}/self_attention/linear_0/bias"),
                    &[3 * D],
                    &fill(3 * D, 0.0),
                );
            w = linear(w, &format!("{l}/self_attention/linear_1"), D, D);
            w = norm(w, &format!("{l}/self_attention/layer_norm"));
            w = linear(w, &format!("{l}/ffn/linear_0"), 4 * D, D);
            w = linear(w, &format!("{l}/ffn/linear_1"), D, 4 * D);
            w = norm(w, &format!("{l}/ffn/layer_norm"));
            w = norm(w, &format!("{side}/layer_norm"));
        }
        let a = "decoder/layer_0/attention";
        w = linear(w, &format!("{a}/linear_0"), D, D);
        w = w
            .f32s(
                &format!("{a}/linear_1/weight"),
                &[2 * D, D],
                &fused(&[2.0, 3.0]),
            )
            .f32s(&format!("{a}/linear_1/bias"), &[2 * D], &fill(2 * D, 0.0));
        w = linear(w, &format!("{a}/linear_2"), D, D);
        w = norm(w, &format!("{a}/layer_norm"));
        w.finish(6)
    }

    #[test]
    fn reads_the_shape_from_the_tensors() {
        let file = Ct2File::parse(tiny_model()).unwrap();
        let (_, c) = weight_map(&file).unwrap();
        assert_eq!(
            (
                c.d_model,
                c.num_mel_bins,
                c.vocab_size,
                c.encoder_layers,
                c.decoder_layers
            ),
            (8, 4, 12, 1, 1)
        );
        assert_eq!(
            (c.encoder_attention_heads, c.decoder_attention_heads),
            (2, 2)
        );
        assert_eq!((c.max_source_positions, c.max_target_positions), (6, 8));
    }

    #[test]
    fn splits_fused_projections_in_query_key_value_order() {
        let file = Ct2File::parse(tiny_model()).unwrap();
        let (map, _) = weight_map(&file).unwrap();
        let first = |name: &str| -> f32 { map[name].i((0, 0)).unwrap().to_scalar().unwrap() };
        let enc = "model.encoder.layers.0.self_attn";
        assert_eq!(first(&format!("{enc}.q_proj.weight")), 1.0);
        assert_eq!(first(&format!("{enc}.k_proj.weight")), 2.0);
        assert_eq!(first(&format!("{enc}.v_proj.weight")), 3.0);
        let cross = "model.decoder.layers.0.encoder_attn";
        assert_eq!(first(&format!("{cross}.k_proj.weight")), 2.0);
        assert_eq!(first(&format!("{cross}.v_proj.weight")), 3.0);
        assert_eq!(map[&format!("{cross}.v_proj.weight")].dims(), &[8, 8]);
    }

    #[test]
    fn the_loaded_model_runs_end_to_end() {
        let file = Ct2File::parse(tiny_model()).unwrap();
        let (mut model, decoder) = load(&file).unwrap();
        assert_eq!(decoder.embeddings().dims(), &[12, 8]);
        let mel = Tensor::zeros((1, 4, 12), DType::F32, &Device::Cpu).unwrap();
        let features = model.encoder.forward(&mel, true).unwrap();
        assert_eq!(features.dims(), &[1, 6, 8]);
        let mut state = decoder.start(&features).unwrap();
        let hidden = decoder.step(&mut state, &[1, 2, 3]).unwrap();
        assert_eq!(hidden.dims(), &[1, 3, 8]);
    }

    #[test]
    fn a_missing_tensor_or_quantized_weight_is_an_error() {
        let file = Ct2File::parse(Writer::default().finish(6)).unwrap();
        assert!(weight_map(&file).unwrap_err().contains("missing tensor"));
        let quantized = Writer::default()
            .var("decoder/embeddings/weight", &[2, 2], 1, vec![0; 4])
            .finish(6);
        let file = Ct2File::parse(quantized).unwrap();
        let w = Weights {
            file: &file,
            tensors: HashMap::new(),
        };
        assert!(w
            .tensor("decoder/embeddings/weight")
            .unwrap_err()
            .contains("quantized"));
    }
}
