//! Rollouts on the in-process engine or on OpenAI-compatible inference servers, and keeping
//! servers on the current weights. The `rzero serve` server is its own crate (`rzero-serve`),
//! so the library does not link axum.
//!
//! - [`RolloutBackend`]: "complete these prompts `n` times" — synchronous, batch in, all
//!   results out (or one error, never a partial batch). Two implementations:
//!   [`LocalBackend`] (the batched [`engine::Engine`] over a [`model::Model`]) and
//!   [`OpenAiClient`] (`/v1/completions` or `/v1/chat/completions` on one or more servers:
//!   vLLM, SGLang, llama.cpp, `rzero serve`), with bounded concurrency, load spread,
//!   timeouts and retries with backoff.
//! - [`judge`]: the evaluation's LLM re-check of wrong answers (`eval::Judge`) on a
//!   chat-completions server.
//! - [`sync`]: after a training phase, point servers at the new weights (vLLM's LoRA
//!   endpoint, or a user-given reload command followed by polling `/v1/models`).

pub mod client;
pub mod error;
pub mod judge;
pub mod local;
pub mod sync;

pub use client::{OpenAiClient, RemoteConfig};
pub use engine::{FinishReason, SamplingParams};
pub use error::{Error, Result};
pub use judge::{JudgeConfig, OpenAiJudge};
pub use local::LocalBackend;
pub use model::ChatMessage;

/// What to complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Prompt text, already chat-templated where needed; tokenized as is (no special tokens
    /// added), as the local engine does.
    Text(String),
    /// Prompt token ids (exact on any server that accepts token prompts: vLLM, `rzero serve`).
    Tokens(Vec<u32>),
    /// A chat, rendered with the model's chat template (by the server when remote).
    Chat(Vec<ChatMessage>),
}

/// One prompt to complete `params.n` times.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling parameters (`n`, temperature, filters, limits, stops, seed, logprobs).
    pub params: SamplingParams,
}

impl TextRequest {
    /// A text prompt.
    pub fn text(prompt: impl Into<String>, params: SamplingParams) -> Self {
        Self {
            prompt: Prompt::Text(prompt.into()),
            params,
        }
    }

    /// A chat prompt.
    pub fn chat(messages: Vec<ChatMessage>, params: SamplingParams) -> Self {
        Self {
            prompt: Prompt::Chat(messages),
            params,
        }
    }
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct TextCompletion {
    /// Generated text (special tokens skipped), cut before a matched stop string.
    pub text: String,
    /// `Stop` (EOS, stop token or stop string) or `Length` (token limit).
    pub finish_reason: FinishReason,
    /// Generated token ids, when the backend reports them (local engine, `rzero serve`,
    /// vLLM with `return_token_ids`).
    pub token_ids: Option<Vec<u32>>,
    /// Per-token log-probabilities (raw model distribution), when requested and reported.
    pub logprobs: Option<Vec<f32>>,
    /// Per token of `token_ids`: written by a forced answer (`params.force_answer`), not
    /// sampled. Empty when nothing was forced or the token ids are unknown.
    pub forced: Vec<bool>,
    /// Byte offset in `text` where the forced answer's cue starts; `None` when not forced.
    pub forced_from: Option<usize>,
}

/// Progress callback: (samples done, samples total).
pub type OnProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Where rollouts run. Synchronous: the R-Zero loop is.
pub trait RolloutBackend: Send + Sync {
    /// Completes every request `params.n` times. The result has one entry per request, in
    /// order, each with `n` completions ordered by sample index. Any failure fails the whole
    /// batch (no partial results).
    fn generate(&self, requests: &[TextRequest]) -> Result<Vec<Vec<TextCompletion>>> {
        self.generate_with_progress(requests, &mut |_, _| {})
    }

    /// [`RolloutBackend::generate`], reporting (samples done, samples total) as it goes.
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>>;
}
