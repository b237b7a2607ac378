//! Model configuration: HF `config.json` (transformers 4 and 5 styles) -> [`Config`].
//! OWNER: model-core helper. Field set agreed with gguf.rs (model-io helper).

use serde::{Deserialize, Serialize};

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
