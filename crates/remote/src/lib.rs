//! Rollouts on the in-process engine or on OpenAI-compatible inference servers, and keeping
//! servers on the current weights. The `rzero serve` server is its own crate (`rzero-serve`),
//! so the library does not link axum.
//!
//! - [`OpenAiClient`]: the [`engine::Sampler`] ("complete these prompts `n` times",
//!   synchronous, batch in, all results out or one error) on OpenAI-compatible servers
//!   (`/v1/completions` or `/v1/chat/completions` on one or more servers: vLLM, SGLang,
//!   llama.cpp, `rzero serve`), with bounded concurrency, load spread, timeouts and retries
//!   with backoff. The in-process one is [`engine::LocalSampler`].
//! - [`judge`]: the evaluation's LLM re-check of wrong answers (`eval::Judge`) on a
//!   chat-completions server.
//! - [`sync`]: after a training phase, point servers at the new weights (vLLM's LoRA
//!   endpoint, or a user-given reload command followed by polling `/v1/models`).

pub mod client;
pub mod error;
mod http;
pub mod judge;
pub mod sync;

pub use client::{OpenAiClient, RemoteConfig};
pub use engine::{FinishReason, SamplingParams};
pub use error::{Error, Result};
pub use judge::{JudgeConfig, OpenAiJudge};
pub use model::ChatMessage;

pub use engine::{OnProgress, Prompt, Sampler, TextCompletion, TextRequest};
