//! Requests, sampling parameters and results: the types the engine's callers build and read.

use serde::{Deserialize, Serialize};

/// How to sample the completions of one prompt.
///
/// Filters are applied in vLLM's order: temperature, then top-k, then top-p (on the top-k
/// renormalised distribution), then min-p. `temperature == 0` is greedy decoding (argmax,
/// lowest token id on ties) and ignores the filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Number of completions of the prompt (they share the prompt's prefill).
    pub n: usize,
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches
    /// `top_p`. 1 disables it.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens. 0 disables it.
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` times the largest one. 0 disables it.
    pub min_p: f32,
    /// Most new tokens per completion (also capped by the model's context).
    pub max_new_tokens: usize,
    /// Strings that end a completion; the returned text stops before the first match
    /// (the token ids keep the token that completed it).
    pub stop: Vec<String>,
    /// Token ids that end a completion (kept in `token_ids`), besides the EOS ids.
    pub stop_token_ids: Vec<u32>,
    /// Do not stop at the EOS ids (stop strings and `stop_token_ids` still apply).
    pub ignore_eos: bool,
    /// Seed of the request; sample `i` draws from the ChaCha stream `(seed, i)`, so results
    /// do not depend on batch composition or arrival order.
    pub seed: u64,
    /// Return, for each generated token, its log-probability under the raw model
    /// distribution (temperature 1, no filtering), as vLLM does.
    pub logprobs: bool,
    /// Forced final answers: a completion that ends without a closed `\boxed{}` gets the
    /// cue appended and continues for a few tokens (see [`crate::force`]). `None`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_answer: Option<crate::ForceAnswer>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            max_new_tokens: 256,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            seed: 0,
            logprobs: false,
            force_answer: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }

    /// True when sampling reduces to argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// Checks the ranges of the parameters; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n == 0 {
            return Err("n must be at least 1".into());
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.max_new_tokens == 0 {
            return Err("max_new_tokens must be at least 1".into());
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err("stop strings must not be empty".into());
        }
        if let Some(f) = &self.force_answer {
            f.validate()?;
        }
        Ok(())
    }
}

/// One prompt to complete `params.n` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Caller's id, echoed in the results.
    pub id: u64,
    /// Prompt token ids (at least one).
    pub prompt_ids: Vec<u32>,
    /// Sampling parameters.
    pub params: SamplingParams,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// EOS, a stop token id or a stop string.
    Stop,
    /// `max_new_tokens` or the model's context was reached.
    Length,
}

impl FinishReason {
    /// `"stop"` or `"length"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// One finished completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The request's id.
    pub request_id: u64,
    /// Sample index in `0..n`.
    pub index: usize,
    /// Generated ids, including the EOS / stop token that ended it.
    pub token_ids: Vec<u32>,
    /// Decoded text (special tokens skipped), cut before a matched stop string.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// The stop string that matched, if any.
    pub stop_string: Option<String>,
    /// Per-token log-probabilities (raw model distribution) when requested.
    pub logprobs: Option<Vec<f32>>,
    /// Per token of `token_ids`: true when the engine wrote it (a forced-answer cue or
    /// closing brace, [`crate::force`]) instead of sampling it. Empty when nothing was forced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<bool>,
}

/// All completions of one request, ordered by `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    /// The request's id.
    pub request_id: u64,
    /// Prompt length in tokens.
    pub prompt_len: usize,
    /// `params.n` completions.
    pub completions: Vec<Completion>,
}

/// Progress of a [`crate::Engine::generate`] call.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Requests whose completions are all finished.
    pub requests_done: usize,
    /// Requests in the call.
    pub requests_total: usize,
    /// Completions finished.
    pub samples_done: usize,
    /// Completions asked for (sum of `n`).
    pub samples_total: usize,
    /// Prompt tokens run through the model (recomputation included).
    pub prompt_tokens: usize,
    /// Tokens generated so far.
    pub generated_tokens: usize,
    /// Sequences in the last step.
    pub running: usize,
    /// Sequences preempted so far (their cache dropped, recomputed later).
    pub preemptions: usize,
    /// Largest KV reservation seen, in bytes.
    pub peak_kv_bytes: usize,
    /// Model steps so far.
    pub steps: usize,
    /// Seconds since the call began.
    pub elapsed_s: f64,
}

/// What [`crate::Engine::generate`] reports while it runs.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A completion finished (streamed as soon as it does).
    Completion(&'a Completion),
    /// Sent after every model step.
    Progress(Progress),
}
