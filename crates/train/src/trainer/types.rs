//! The trainer's public inputs (a [`Group`] of [`Response`]s) and outputs (the statistics of
//! a gradient computation and an update, and a `metrics.jsonl` step row).

use serde::{Deserialize, Serialize};

/// One sampled response and its scalar reward.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// Response token ids, up to and including the first EOS (every id is trained on).
    pub ids: Vec<u32>,
    /// Scalar reward.
    pub reward: f32,
    /// Log-probs of `ids` under the behaviour policy; `None`: the current policy's
    /// (on-policy: ratio 1, the gradient still flows).
    pub old_logprobs: Option<Vec<f32>>,
    /// Log-probs of `ids` under the reference policy; `None`: computed by the trainer.
    pub ref_logprobs: Option<Vec<f32>>,
    /// Per token of `ids`: true for a token the engine wrote (a forced-answer cue,
    /// `engine::force`), which is in the context but has no loss term: masked out as a pad
    /// is (no gradient, not counted in the aggregation). Empty = every token is trained on.
    pub forced: Vec<bool>,
}

/// A prompt with its G sampled responses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Prompt token ids (chat template applied; not trained on).
    pub prompt: Vec<u32>,
    /// The responses.
    pub responses: Vec<Response>,
}

/// What one gradient computation saw (loss terms are the aggregated loss; the rest are
/// weighted means over response tokens, with the loss's aggregation weights).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GradStats {
    /// `Σ w·(ℓ + β·kl)`: the loss that was differentiated.
    pub loss: f64,
    /// `Σ w·ℓ`.
    pub pg_loss: f64,
    /// `Σ w·kl` (not multiplied by β).
    pub kl: f64,
    /// Share of tokens with `−A·ρ < −A·ρ_clipped` (the reference's `pg_clipfrac_higher`).
    pub pg_clipfrac_higher: f64,
    /// Share of tokens where the dual clip binds (`pg_clipfrac_lower`).
    pub pg_clipfrac_lower: f64,
    /// Share of tokens with `A > 0` whose ratio is clipped above (`ρ > 1 + ε_high`).
    pub clipfrac_ratio_upper: f64,
    /// Share of tokens with `A < 0` whose ratio is clipped below (`ρ < 1 − ε_low`).
    pub clipfrac_ratio_lower: f64,
    /// Smallest ratio `ρ = exp(logp − old)` over the response tokens (1 when there are none).
    pub ratio_min: f64,
    /// Largest ratio over the response tokens (1 when there are none).
    pub ratio_max: f64,
    /// Share of the sequences whose advantage is not zero (a step where it is 0 teaches
    /// nothing but the KL).
    pub adv_nonzero_frac: f64,
    /// Mean `old − logp` (`ppo_kl`).
    pub ppo_kl: f64,
    /// Mean entropy of the policy's next-token distribution over response positions.
    pub entropy: f64,
    /// Mean `−logp` (the reference's `entropy_loss` metric).
    pub neg_logp: f64,
    /// Response tokens whose KL hit the clamp.
    pub kl_clamped_tokens: usize,
    /// Response tokens trained on.
    pub response_tokens: usize,
    /// Prompt and response tokens run through forward and backward (pads excluded).
    pub tokens: usize,
    /// Sequences trained on.
    pub sequences: usize,
    /// Groups given.
    pub groups: usize,
    /// Groups dropped because their rewards were all equal.
    pub groups_dropped: usize,
    /// Share of groups whose rewards were all equal.
    pub frac_reward_zero_std: f64,
    /// Mean reward over all given responses.
    pub reward_mean: f64,
    /// Standard deviation (population) of the rewards over all given responses.
    pub reward_std: f64,
    /// Mean response length (tokens) over all given responses.
    pub response_len_mean: f64,
    /// Longest response (tokens).
    pub response_len_max: usize,
}

/// What the optimizer step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Factor applied to the gradient (1 when not clipped).
    pub clip_coef: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// `true` when the norm was not finite and the update was skipped.
    pub skipped: bool,
}

/// One line of `metrics.jsonl`: a training step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Step number (1-based: the number of steps done after this one).
    pub step: u64,
    /// Loss, KL, clip fractions, entropy, rewards, lengths.
    #[serde(flatten)]
    pub grad: GradStats,
    /// Gradient norm, clip factor, learning rate, skipped.
    #[serde(flatten)]
    pub update: UpdateStats,
    /// Wall time of the step (forward, backward, update), seconds.
    pub time_s: f64,
    /// `tokens / time_s`.
    pub tokens_per_s: f64,
    /// The process's resident set after the update, bytes (Linux `VmRSS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    /// The process's peak resident set so far, bytes (`VmHWM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_peak_bytes: Option<u64>,
    /// CUDA: the most device memory in use seen during the update (read with the graph and
    /// the gradients alive, and after the update), bytes; absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_device_bytes: Option<u64>,
    /// CUDA: the device's memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_device_total_bytes: Option<u64>,
}
