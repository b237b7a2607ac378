//! rzero's batched generation engine.
//!
//! - [`Engine::generate`] runs many [`Request`]s (prompt ids + [`SamplingParams`]) with
//!   continuous batching, chunked prefill, one prefill per prompt shared by its `n`
//!   samples, and a KV-cache byte budget ([`EngineConfig`]); it streams finished
//!   [`Completion`]s and [`Progress`] through a callback and can be cancelled
//!   ([`Engine::cancel_flag`]).
//! - [`Sampler`] ([`sampler`]): the one rollout seam, prompts in, `n` completions out;
//!   [`LocalSampler`] is this engine's, `remote::OpenAiClient` the servers'.
//!   [`Sampler::serve`] runs a server's queue ([`SampleFeed`]); the local engine batches it
//!   continuously.
//! - [`sampling`]: greedy, temperature, top-k, top-p, min-p (vLLM's order) on per-sequence
//!   ChaCha streams keyed by `(seed, sample index)`, so samples do not depend on the batch.
//! - [`knobs`]: [`SamplingKnobs`] and [`EngineKnobs`], the knobs a run configuration holds
//!   (and documents), turned into [`SamplingParams`] and [`EngineConfig`] here.
//! - [`force`]: forced final answers (a cue and a few more tokens when a completion ends
//!   without a closed `\boxed{}`), a generation option for small models.
//! - [`stop`]: incremental detokenisation and stop strings.
//! - [`step`]: the [`StepModel`] interface the scheduler runs on, implemented for
//!   `model::Model` (its `forward_packed`).
//!
//! On CPU the sampling of a step runs on all cores (rayon) while the model's matmuls use
//! candle's threads. A GPU build keeps the same scheduler; only [`StepModel::step`] and the
//! logits transfer change.

pub mod bench;
pub mod engine;
pub mod error;
pub mod force;
pub mod knobs;
pub mod params;
pub mod sampler;
pub mod sampling;
pub mod step;
pub mod stop;

pub use engine::{Engine, EngineConfig, Feed};
pub use error::{Error, Result};
pub use force::ForceAnswer;
pub use knobs::{EngineKnobs, SamplingKnobs};
pub use params::{
    Completion, Event, FinishReason, Progress, Request, RequestOutput, SamplingParams,
};
pub use sampler::{
    LocalSampler, ModelInfo, OnProgress, PolicyWeights, Prompt, SampleFeed, Sampler, ServeEvent,
    TextCompletion, TextRequest,
};
pub use step::{StepItem, StepModel};
pub use stop::Detokenize;
