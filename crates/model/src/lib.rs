/*!
Llama / Qwen2 / Qwen3 causal language models on candle, with loading from Hugging Face
folders, GGUF files and the Hugging Face Hub (cache and download), tokenizers, and chat
templates.

- [`Config`]: the resolved model configuration (from `config.json` or GGUF metadata).
- [`Model`]: one differentiable implementation for all three families
  (`forward` / `forward_hidden` for training and scoring; `forward_packed` with
  per-sequence [`KvCache`]s for fast inference).
- [`hub`] / [`download`]: hub ids resolved through the standard Hugging Face cache, and
  downloaded into it (resumable, `HF_ENDPOINT` / `HF_TOKEN` / `HF_HUB_OFFLINE` honoured).
- [`load`]: `PATH` (folder, `.gguf`, or hub id) -> [`LoadedModel`] (config, weights,
  tokenizer, chat template, generation config).
- [`lora`]: PEFT LoRA adapters (naming, `adapter_config.json`, merge); [`load`] merges an
  adapter folder into its base model.
- [`logprobs`]: per-token log-probabilities of completions, computed in vocabulary chunks;
  the quantity both `rzero score` and GRPO use.
*/

mod cache;
pub mod chat;
pub mod compact;
pub mod config;
pub mod device;
pub mod download;
pub mod error;
mod generation;
pub mod gguf;
pub mod heap;
pub mod hub;
pub(crate) mod kernels;
mod kvpool;
pub mod load;
pub mod logprobs;
pub mod lora;
pub mod ops;
pub mod packed;
mod safetensors_io;
pub mod save;
pub mod shared;
pub mod simd;
pub mod smollm2;
pub mod tokenizer;
pub mod transformer;

/// The training path's f32 product kernel, for `examples/gemm_bench.rs` only: compiled with
/// the `bench-kernels` feature, never in a default build (not an API: it panics without
/// AVX-512F).
#[cfg(feature = "bench-kernels")]
#[doc(hidden)]
pub mod gemm_bench {
    pub use crate::kernels::gemm::{available, gemm, gemm_nt};
}

pub use config::{Arch, Config, RopeScaling};
pub use device::DeviceSpec;
pub use error::{Error, Result};
// Re-exports added by the owners of each module as they land:
pub use chat::{ChatMessage, ChatTemplate};
pub use load::{load, load_with_adapter, GenerationConfig, LoadOptions, LoadedModel};
pub use packed::{KvCache, SeqInput};
pub use save::save_hf_folder;
pub use shared::SharedInputs;
pub use tokenizer::Tokenizer;
pub use transformer::{DecoderInputs, Model};

/// Model weights by Hugging Face parameter name (`model.layers.0.self_attn.q_proj.weight`).
/// With tied embeddings `lm_head.weight` is absent.
pub type Weights = std::collections::HashMap<String, candle_core::Tensor>;
