//! Model configuration: HF `config.json` (transformers 4 and 5 styles) -> [`Config`].
//!
//! transformers 4 writes a top-level `rope_theta` and `torch_dtype`; transformers 5 writes
//! `rope_parameters: {rope_theta, rope_type, ...}` and `dtype`. Both are accepted. The
//! architecture comes from `architectures[0]` (else `model_type`). Qwen2 always has q/k/v
//! biases; Qwen3 has an explicit `head_dim` and per-head q/k RMSNorm.
//! OWNER: model-core helper. Field set agreed with gguf.rs (model-io helper).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// The model family; switches q/k/v bias and q/k norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama / SmolLM2.
    Llama,
    /// Qwen2 / Qwen2.5 (q/k/v bias).
    Qwen2,
    /// Qwen3 (q_norm / k_norm, explicit head_dim).
    Qwen3,
}

/// HF `rope_scaling` (types `linear`, `dynamic` is treated as none for short inputs,
/// `llama3`, `yarn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `rope_type` / `type`.
    pub rope_type: String,
    /// `factor`.
    pub factor: f64,
    /// llama3: `low_freq_factor`.
    pub low_freq_factor: Option<f64>,
    /// llama3: `high_freq_factor`.
    pub high_freq_factor: Option<f64>,
    /// llama3/yarn: `original_max_position_embeddings`.
    pub original_max_position_embeddings: Option<usize>,
}

/// The resolved configuration every part of rzero uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Model family.
    pub arch: Arch,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA).
    pub num_key_value_heads: usize,
    /// Per-head dimension (explicit in Qwen3; else hidden / heads).
    pub head_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Optional RoPE scaling.
    pub rope_scaling: Option<RopeScaling>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// q/k/v projections have biases (Qwen2, or `attention_bias: true`).
    pub attention_bias: bool,
    /// Per-head RMSNorm on q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    /// Context length.
    pub max_position_embeddings: usize,
    /// BOS token id, if any.
    pub bos_token_id: Option<u32>,
    /// EOS token ids (config.json may list several).
    pub eos_token_ids: Vec<u32>,
    /// PAD token id, if any.
    pub pad_token_id: Option<u32>,
}

fn bad(origin: &Path, msg: impl Into<String>) -> Error {
    Error::BadFile {
        path: origin.to_path_buf(),
        msg: msg.into(),
    }
}

/// A present, non-null key.
fn key<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    obj.get(k).filter(|v| !v.is_null())
}

fn req_usize(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<usize> {
    match key(obj, k) {
        None => Err(bad(origin, format!("missing required key `{k}`"))),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            bad(
                origin,
                format!("key `{k}` must be a non-negative integer, got {v}"),
            )
        }),
    }
}

fn opt_usize(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<Option<usize>> {
    match key(obj, k) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
            bad(
                origin,
                format!("key `{k}` must be a non-negative integer, got {v}"),
            )
        }),
    }
}

fn opt_f64(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<Option<f64>> {
    match key(obj, k) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(origin, format!("key `{k}` must be a number, got {v}"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<Option<bool>> {
    match key(obj, k) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad(origin, format!("key `{k}` must be a boolean, got {v}"))),
    }
}

fn opt_token(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<Option<u32>> {
    Ok(opt_usize(obj, k, origin)?.map(|x| x as u32))
}

/// `eos_token_id`: an int, a list of ints, or absent.
fn token_list(obj: &Map<String, Value>, k: &str, origin: &Path) -> Result<Vec<u32>> {
    match key(obj, k) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|x| x as u32)
                    .ok_or_else(|| bad(origin, format!("key `{k}` must hold integers, got {v}")))
            })
            .collect(),
        Some(v) => v.as_u64().map(|x| vec![x as u32]).ok_or_else(|| {
            bad(
                origin,
                format!("key `{k}` must be an integer or a list, got {v}"),
            )
        }),
    }
}

fn arch_from_name(s: &str) -> Option<Arch> {
    let l = s.to_ascii_lowercase();
    if l.starts_with("qwen3") && !l.starts_with("qwen3moe") && !l.starts_with("qwen3_moe") {
        Some(Arch::Qwen3)
    } else if l.starts_with("qwen2") && !l.contains("moe") && !l.contains("vl") {
        Some(Arch::Qwen2)
    } else if l.starts_with("llama") {
        Some(Arch::Llama)
    } else {
        None
    }
}

fn parse_rope_scaling(v: &Value, origin: &Path) -> Result<Option<RopeScaling>> {
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => {
            return Err(bad(
                origin,
                format!("key `rope_scaling` must be an object, got {v}"),
            ))
        }
    };
    let rope_type = key(obj, "rope_type")
        .or_else(|| key(obj, "type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default")
        .to_string();
    if rope_type == "default" {
        return Ok(None);
    }
    if !matches!(rope_type.as_str(), "linear" | "dynamic" | "llama3" | "yarn") {
        return Err(bad(
            origin,
            format!("unsupported rope scaling type `{rope_type}` (supported: linear, dynamic, llama3, yarn)"),
        ));
    }
    let factor = opt_f64(obj, "factor", origin)?
        .ok_or_else(|| bad(origin, "missing required key `rope_scaling.factor`"))?;
    let low_freq_factor = opt_f64(obj, "low_freq_factor", origin)?;
    let high_freq_factor = opt_f64(obj, "high_freq_factor", origin)?;
    let original_max_position_embeddings =
        opt_usize(obj, "original_max_position_embeddings", origin)?;
    if rope_type == "llama3" {
        for (k, val) in [
            ("low_freq_factor", low_freq_factor),
            ("high_freq_factor", high_freq_factor),
        ] {
            if val.is_none() {
                return Err(bad(
                    origin,
                    format!("missing required key `rope_scaling.{k}`"),
                ));
            }
        }
        if original_max_position_embeddings.is_none() {
            return Err(bad(
                origin,
                "missing required key `rope_scaling.original_max_position_embeddings`",
            ));
        }
    }
    Ok(Some(RopeScaling {
        rope_type,
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    }))
}

impl Config {
    /// Reads an HF `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(fsutil::at(path))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))?;
        Self::from_hf_value(&v, path)
    }

    /// Resolves an HF config object; `origin` names the file in errors.
    pub fn from_hf_value(v: &Value, origin: &Path) -> Result<Config> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad(origin, "config must be a JSON object"))?;
        // 1. Architecture: `architectures[0]`, else `model_type`.
        let arch_name = key(obj, "architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let model_type = key(obj, "model_type")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let arch = match (&arch_name, &model_type) {
            (None, None) => {
                return Err(bad(
                    origin,
                    "missing required key `architectures` (or `model_type`)",
                ))
            }
            _ => arch_name
                .as_deref()
                .and_then(arch_from_name)
                .or_else(|| model_type.as_deref().and_then(arch_from_name))
                .ok_or_else(|| {
                    Error::UnknownArch(arch_name.clone().or(model_type.clone()).unwrap_or_default())
                })?,
        };
        // 2. Sizes.
        let vocab_size = req_usize(obj, "vocab_size", origin)?;
        let hidden_size = req_usize(obj, "hidden_size", origin)?;
        let intermediate_size = req_usize(obj, "intermediate_size", origin)?;
        let num_hidden_layers = req_usize(obj, "num_hidden_layers", origin)?;
        if num_hidden_layers == 0 || num_hidden_layers > 1 << 16 {
            return Err(bad(
                origin,
                format!("`num_hidden_layers` must be in 1..=65536, got {num_hidden_layers}"),
            ));
        }
        let num_attention_heads = req_usize(obj, "num_attention_heads", origin)?;
        if num_attention_heads == 0 || hidden_size == 0 || vocab_size == 0 {
            return Err(bad(
                origin,
                "`vocab_size`, `hidden_size` and `num_attention_heads` must be positive",
            ));
        }
        let num_key_value_heads =
            opt_usize(obj, "num_key_value_heads", origin)?.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(bad(
                origin,
                format!("`num_attention_heads` ({num_attention_heads}) must be a multiple of `num_key_value_heads` ({num_key_value_heads})"),
            ));
        }
        let head_dim = match opt_usize(obj, "head_dim", origin)? {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(bad(origin, "missing required key `head_dim` (hidden_size is not a multiple of num_attention_heads)"));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(bad(
                origin,
                format!("`head_dim` must be even and positive, got {head_dim}"),
            ));
        }
        // 3. RoPE: transformers 5 `rope_parameters`, else transformers 4 top-level keys.
        let rope_params = key(obj, "rope_parameters");
        let rope_theta = match rope_params {
            Some(Value::Object(p)) => opt_f64(p, "rope_theta", origin)?,
            _ => None,
        }
        .or(opt_f64(obj, "rope_theta", origin)?)
        .unwrap_or(10000.0);
        let rope_scaling = match (key(obj, "rope_scaling"), rope_params) {
            (Some(s), _) => parse_rope_scaling(s, origin)?,
            (None, Some(p)) => parse_rope_scaling(p, origin)?,
            (None, None) => None,
        };
        if let Some(act) = key(obj, "hidden_act").and_then(|a| a.as_str()) {
            if act != "silu" && act != "swish" {
                return Err(bad(
                    origin,
                    format!("unsupported `hidden_act` `{act}` (only silu)"),
                ));
            }
        }
        let attention_bias = match arch {
            Arch::Qwen2 => true,
            _ => opt_bool(obj, "attention_bias", origin)?.unwrap_or(false),
        };
        let default_max_pos = match arch {
            Arch::Llama => 2048,
            _ => 32768,
        };
        Ok(Config {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rope_scaling,
            rms_norm_eps: opt_f64(obj, "rms_norm_eps", origin)?.unwrap_or(1e-6),
            tie_word_embeddings: opt_bool(obj, "tie_word_embeddings", origin)?.unwrap_or(false),
            attention_bias,
            qk_norm: arch == Arch::Qwen3,
            max_position_embeddings: opt_usize(obj, "max_position_embeddings", origin)?
                .unwrap_or(default_max_pos),
            bos_token_id: opt_token(obj, "bos_token_id", origin)?,
            eos_token_ids: token_list(obj, "eos_token_id", origin)?,
            pad_token_id: opt_token(obj, "pad_token_id", origin)?,
        })
    }

    /// A transformers-4 style `config.json` (top-level `rope_theta`, `torch_dtype` float32)
    /// that transformers 4 and 5 both load.
    pub fn to_hf_json(&self) -> Value {
        let (architecture, model_type) = match self.arch {
            Arch::Llama => ("LlamaForCausalLM", "llama"),
            Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
            Arch::Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
        };
        let mut m = Map::new();
        m.insert("architectures".into(), json!([architecture]));
        m.insert("model_type".into(), json!(model_type));
        m.insert("vocab_size".into(), json!(self.vocab_size));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("intermediate_size".into(), json!(self.intermediate_size));
        m.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        m.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        m.insert(
            "num_key_value_heads".into(),
            json!(self.num_key_value_heads),
        );
        m.insert("head_dim".into(), json!(self.head_dim));
        m.insert("hidden_act".into(), json!("silu"));
        m.insert(
            "max_position_embeddings".into(),
            json!(self.max_position_embeddings),
        );
        m.insert("rms_norm_eps".into(), json!(self.rms_norm_eps));
        m.insert("rope_theta".into(), json!(self.rope_theta));
        m.insert(
            "rope_scaling".into(),
            match &self.rope_scaling {
                None => Value::Null,
                Some(s) => {
                    let mut r = Map::new();
                    r.insert("rope_type".into(), json!(s.rope_type));
                    r.insert("type".into(), json!(s.rope_type));
                    r.insert("factor".into(), json!(s.factor));
                    if let Some(x) = s.low_freq_factor {
                        r.insert("low_freq_factor".into(), json!(x));
                    }
                    if let Some(x) = s.high_freq_factor {
                        r.insert("high_freq_factor".into(), json!(x));
                    }
                    if let Some(x) = s.original_max_position_embeddings {
                        r.insert("original_max_position_embeddings".into(), json!(x));
                    }
                    Value::Object(r)
                }
            },
        );
        m.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        if self.arch != Arch::Qwen2 {
            m.insert("attention_bias".into(), json!(self.attention_bias));
        }
        if self.arch == Arch::Llama {
            m.insert("mlp_bias".into(), json!(false));
        }
        if self.arch != Arch::Llama {
            m.insert("use_sliding_window".into(), json!(false));
            m.insert("sliding_window".into(), Value::Null);
        }
        m.insert("attention_dropout".into(), json!(0.0));
        m.insert("bos_token_id".into(), json!(self.bos_token_id));
        m.insert(
            "eos_token_id".into(),
            match self.eos_token_ids.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        m.insert("pad_token_id".into(), json!(self.pad_token_id));
        m.insert("torch_dtype".into(), json!("float32"));
        m.insert("use_cache".into(), json!(true));
        Value::Object(m)
    }

    /// Number of unique parameters (a tied embedding counted once).
    pub fn num_parameters(&self) -> usize {
        let (h, d) = (self.hidden_size, self.head_dim);
        let q = self.num_attention_heads * d;
        let kv = self.num_key_value_heads * d;
        let mut layer = h * q + 2 * h * kv + q * h + 3 * h * self.intermediate_size + 2 * h;
        if self.attention_bias {
            layer += q + 2 * kv;
        }
        if self.qk_norm {
            layer += 2 * d;
        }
        let mut n = self.vocab_size * h + self.num_hidden_layers * layer + h;
        if !self.tie_word_embeddings {
            n += self.vocab_size * h;
        }
        n
    }

    /// RoPE inverse frequencies (length `head_dim / 2`) with `rope_scaling` applied, and the
    /// attention factor that multiplies cos/sin (1 except for yarn).
    pub fn rope_inv_freq(&self) -> (Vec<f32>, f32) {
        let dim = self.head_dim;
        let base = self.rope_theta;
        let plain: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
            .collect();
        let Some(s) = &self.rope_scaling else {
            return (plain.iter().map(|&x| x as f32).collect(), 1.0);
        };
        match s.rope_type.as_str() {
            "linear" => (plain.iter().map(|&x| (x / s.factor) as f32).collect(), 1.0),
            "llama3" => {
                let factor = s.factor;
                let low = s.low_freq_factor.unwrap_or(1.0);
                let high = s.high_freq_factor.unwrap_or(4.0);
                let old = s.original_max_position_embeddings.unwrap_or(8192) as f64;
                let low_wavelen = old / low;
                let high_wavelen = old / high;
                let f = plain
                    .iter()
                    .map(|&inv| {
                        let wavelen = 2.0 * std::f64::consts::PI / inv;
                        if wavelen < high_wavelen {
                            inv
                        } else if wavelen > low_wavelen {
                            inv / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * inv / factor + smooth * inv
                        }
                    })
                    .map(|x| x as f32)
                    .collect();
                (f, 1.0)
            }
            "yarn" => {
                let factor = s.factor;
                let orig = s
                    .original_max_position_embeddings
                    .unwrap_or(self.max_position_embeddings) as f64;
                let mscale = |scale: f64| {
                    if scale <= 1.0 {
                        1.0
                    } else {
                        0.1 * scale.ln() + 1.0
                    }
                };
                let (beta_fast, beta_slow) = (32.0f64, 1.0f64);
                let corr = |rot: f64| {
                    (dim as f64 * (orig / (rot * 2.0 * std::f64::consts::PI)).ln())
                        / (2.0 * base.ln())
                };
                let lo = corr(beta_fast).floor().max(0.0);
                let mut hi = corr(beta_slow).ceil().min(dim as f64 - 1.0);
                if lo == hi {
                    hi += 0.001;
                }
                let f = plain
                    .iter()
                    .enumerate()
                    .map(|(i, &extra)| {
                        let inter = extra / factor;
                        let ramp = ((i as f64 - lo) / (hi - lo)).clamp(0.0, 1.0);
                        let extra_factor = 1.0 - ramp;
                        (inter * (1.0 - extra_factor) + extra * extra_factor) as f32
                    })
                    .collect();
                (f, mscale(factor) as f32)
            }
            // `dynamic` only changes anything beyond the original context: treated as none.
            _ => (plain.iter().map(|&x| x as f32).collect(), 1.0),
        }
    }
}
