//! [`GrpoConfig`]: every knob of the GRPO step, with R-Zero's reference values as defaults.
//!
//! The defaults follow R-Zero commit 5699329 (its EasyR1 copy): see
//! `tests/fixtures/grpo/README.md`, section "Defaults".

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How per-token losses are averaged into the step's loss.
///
/// Every mode is a weighted sum `Σ w_t · (ℓ_t + β·kl_t)` over the response tokens of the
/// mini-batch; only the weights differ. All but [`LossAgg::MicrobatchTokenMean`] are
/// independent of the micro-batch size (micro-batching only saves memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossAgg {
    /// Mean over all response tokens of the mini-batch (`w = 1/N`).
    TokenMean,
    /// Token mean of each sequence, then mean over sequences (`w = 1/(B·n_i)`); what
    /// R-Zero's Solver (and `questioner_train.sh`) run, with micro-batch 1.
    SeqMeanTokenMean,
    /// Token *sum* of each sequence divided by a constant length, then mean over sequences
    /// (`w = 1/(B·L)`, Dr. GRPO); `L` is [`GrpoConfig::loss_norm_len`] or else the longest
    /// response in the mini-batch.
    SeqMeanTokenSumNorm,
    /// The reference code's literal behaviour: token mean inside each micro-batch of
    /// [`GrpoConfig::micro_batch_size`] consecutive sequences, then the mean over micro-batches
    /// (R-Zero's Challenger runs micro-batch 2; with micro-batch 1 this equals
    /// `seq-mean-token-mean`, with the whole batch `token-mean`).
    MicrobatchTokenMean,
}

/// LoRA: train low-rank adapters instead of the full weights.
///
/// Every target module of every decoder layer gets `A` [r, in] (kaiming-uniform like PEFT,
/// drawn from a ChaCha8 stream of [`GrpoConfig::seed`]) and `B` [out, r] (zeros); the
/// policy's weight is `W + (alpha / r)·B·A` with `W` frozen. No dropout, no bias (PEFT's
/// `lora_dropout = 0`, `bias = "none"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank r. Default 8 (PEFT's).
    pub rank: usize,
    /// α: the update is scaled by `alpha / rank`. `None`: `2·rank` (scale 2; PEFT's own
    /// default is a fixed 8).
    pub alpha: Option<f64>,
    /// Adapted modules in each decoder layer, from `q_proj k_proj v_proj o_proj gate_proj
    /// up_proj down_proj`. Default: all seven.
    pub target_modules: Vec<String>,
    /// Checkpoints also hold the merged model (`model/`, a full Hugging Face folder) beside
    /// the adapter (`adapter/`). Default false: the adapter only.
    pub merge_on_save: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: None,
            target_modules: model::lora::ALL_TARGETS.map(String::from).to_vec(),
            merge_on_save: false,
        }
    }
}

impl LoraConfig {
    /// α (`2·rank` when not given).
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(2.0 * self.rank as f64)
    }

    /// `alpha / rank`, the factor of `B·A`.
    pub fn scale(&self) -> f64 {
        self.alpha() / self.rank as f64
    }
}

/// GRPO hyper-parameters. `#[serde(default)]`: a TOML/JSON object may name only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// AdamW learning rate. Reference: 1e-6.
    pub lr: f64,
    /// AdamW betas. Reference: (0.9, 0.999).
    pub betas: [f64; 2],
    /// AdamW epsilon (added to `sqrt(v̂)`). Reference: 1e-8.
    pub eps: f64,
    /// Decoupled weight decay, applied to every parameter (norms and embeddings too).
    /// Reference: 1e-2.
    pub weight_decay: f64,
    /// Linear warmup steps: step k (0-based) uses `lr · min(1, (k+1)/warmup_steps)`.
    /// Reference: 0 (constant learning rate).
    pub warmup_steps: u64,
    /// Global L2 gradient-norm clip; `0` disables clipping. A non-finite norm always skips
    /// the step. Reference: 1.0.
    pub max_grad_norm: f64,
    /// ε_low: the ratio is clipped below at `1 − ε_low`. Reference: 0.2.
    pub clip_ratio_low: f64,
    /// ε_high: the ratio is clipped above at `1 + ε_high` (clip-higher). Reference: 0.3.
    pub clip_ratio_high: f64,
    /// Dual clip `c`: for negative advantages the loss is capped at `−c·A`; `None` disables.
    /// Reference: 3.0.
    pub clip_ratio_dual: Option<f64>,
    /// β, the coefficient of the low-variance KL to the reference policy in the loss; `0`
    /// disables the KL (and the reference model's forward). Reference: 1e-2.
    pub kl_coef: f64,
    /// The per-token KL is clamped to `[−kl_clamp, kl_clamp]`. Reference: 10.
    pub kl_clamp: f64,
    /// Advantage epsilon added to the (Bessel) std. Reference: 1e-6.
    pub adv_eps: f64,
    /// Divide advantages by the group std (`false`: Dr. GRPO, `A = r − mean`). Reference: true.
    pub scale_adv_by_std: bool,
    /// Drop groups whose rewards are all equal (their advantage is 0; they would only
    /// contribute KL gradient). Reference: false.
    pub drop_equal_reward_groups: bool,
    /// Loss aggregation. Reference (Solver, micro-batch 1): `seq-mean-token-mean`.
    pub loss_agg: LossAgg,
    /// `L` of `seq-mean-token-sum-norm`; `None`: the longest response of the mini-batch.
    pub loss_norm_len: Option<usize>,
    /// Sequences per forward/backward pass (gradient accumulation over micro-batches).
    /// Reference (Solver): 1.
    pub micro_batch_size: usize,
    /// Rows of the hidden state per vocabulary projection chunk in the log-softmax
    /// (bounds the `rows × V` logits alive at once).
    pub logprob_chunk_rows: usize,
    /// Sampling temperature the log-probs are computed at (`logits / T`). Reference: 1.0.
    pub temperature: f64,
    /// Seed of the trainer's RNG (data order and sampling by the driver).
    pub seed: u64,
    /// LoRA adapters instead of full fine-tuning; `None` (the default): full fine-tuning.
    pub lora: Option<LoraConfig>,
    /// Activation recomputation: keep only each decoder layer's input during the forward
    /// pass and recompute the layer during backward (and the head + log-softmax per chunk of
    /// `logprob_chunk_rows` rows). Same gradients, less memory, about one more forward of
    /// time. Default false.
    pub recompute: bool,
    /// Dtype of the forward and backward computation (`f32` or `bf16`). With `bf16` the
    /// trained parameters, their gradients and the AdamW state stay f32 (master weights);
    /// each forward casts the weight matrices to bf16 (norm weights and biases stay f32), the
    /// residual stream, log-softmax and loss are f32, the rollout/reference policies hold bf16
    /// copies, and checkpoints are saved in bf16 (the f32 master weights go to
    /// `optimizer.safetensors`). Default `f32`.
    pub compute_dtype: ComputeDtype,
    /// Operands of the training matrix products with f32 compute (`f32` or `bf16`), as
    /// `torch.set_float32_matmul_precision("medium")` sets them: with `bf16` the forward
    /// `x·Wᵀ` and backward `dY·W`, `dYᵀ·X` products of every linear layer and the head round
    /// their operands to bf16 and sum in f32 (AMX tiles where the CPU has them); weights,
    /// activations, gradients, master weights and AdamW state stay f32, attention's
    /// products too. A departure from the reference's f32 numerics, opt-in; CPU only (other
    /// devices keep f32 products). Default `f32`.
    pub matmul_precision: model::ops::MatmulPrecision,
    /// Shared prompts: the sequences of a mini-batch that share a prompt run as one
    /// micro-batch of `P + G·R` rows (up to `micro_batch_size` responses each; the prompt's
    /// forward once, the responses attending to its keys and values) instead of `G` padded
    /// sequences of `P + R`. The loss is the same function (sequence weights do not depend
    /// on how the work is split); numbers differ by float reassociation. Default true.
    pub shared_prompts: bool,
}

/// [`GrpoConfig::compute_dtype`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// Everything in f32.
    #[default]
    F32,
    /// bf16 weight products with f32 master weights.
    Bf16,
}

impl ComputeDtype {
    /// The candle dtype of the weight matrices in the forward pass.
    pub fn dtype(self) -> candle_core::DType {
        match self {
            ComputeDtype::F32 => candle_core::DType::F32,
            ComputeDtype::Bf16 => candle_core::DType::BF16,
        }
    }

    /// From a candle dtype: f32 or bf16 (anything else is an error naming it).
    pub fn from_dtype(d: candle_core::DType) -> Result<Self> {
        match d {
            candle_core::DType::F32 => Ok(ComputeDtype::F32),
            candle_core::DType::BF16 => Ok(ComputeDtype::Bf16),
            other => Err(Error::invalid(format!(
                "grpo.compute_dtype: training computes in f32 or bf16, not {other:?}"
            ))),
        }
    }
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 1e-2,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.3,
            clip_ratio_dual: Some(3.0),
            kl_coef: 1e-2,
            kl_clamp: 10.0,
            adv_eps: 1e-6,
            scale_adv_by_std: true,
            drop_equal_reward_groups: false,
            loss_agg: LossAgg::SeqMeanTokenMean,
            loss_norm_len: None,
            micro_batch_size: 1,
            logprob_chunk_rows: 256,
            temperature: 1.0,
            seed: 0,
            lora: None,
            recompute: false,
            compute_dtype: ComputeDtype::F32,
            matmul_precision: model::ops::MatmulPrecision::F32,
            shared_prompts: true,
        }
    }
}

/// `a >= b`, false for NaN (keeps NaN out of every range check).
fn ge(a: f64, b: f64) -> bool {
    a >= b
}

/// `a > b`, false for NaN.
fn gt(a: f64, b: f64) -> bool {
    a > b
}

impl GrpoConfig {
    /// Checks value ranges; returns an error naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| Err(Error::invalid(format!("grpo.{field}: {why}")));
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", "must be finite and >= 0");
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return bad(&format!("betas[{i}]"), "must be in [0, 1)");
            }
        }
        if !gt(self.eps, 0.0) {
            return bad("eps", "must be > 0");
        }
        if !ge(self.weight_decay, 0.0) {
            return bad("weight_decay", "must be >= 0");
        }
        if !ge(self.max_grad_norm, 0.0) {
            return bad("max_grad_norm", "must be >= 0");
        }
        if !(0.0..1.0).contains(&self.clip_ratio_low) {
            return bad("clip_ratio_low", "must be in [0, 1)");
        }
        if !ge(self.clip_ratio_high, 0.0) {
            return bad("clip_ratio_high", "must be >= 0");
        }
        if let Some(c) = self.clip_ratio_dual {
            if !gt(c, 1.0) {
                return bad("clip_ratio_dual", "must be > 1");
            }
        }
        if !ge(self.kl_coef, 0.0) {
            return bad("kl_coef", "must be >= 0");
        }
        if !gt(self.kl_clamp, 0.0) {
            return bad("kl_clamp", "must be > 0");
        }
        if !ge(self.adv_eps, 0.0) {
            return bad("adv_eps", "must be >= 0");
        }
        if self.micro_batch_size == 0 {
            return bad("micro_batch_size", "must be >= 1");
        }
        if self.logprob_chunk_rows == 0 {
            return bad("logprob_chunk_rows", "must be >= 1");
        }
        if self.loss_norm_len == Some(0) {
            return bad("loss_norm_len", "must be >= 1");
        }
        if !gt(self.temperature, 0.0) {
            return bad("temperature", "must be > 0");
        }
        if self.matmul_precision != model::ops::MatmulPrecision::F32
            && self.compute_dtype != ComputeDtype::F32
        {
            return bad(
                "matmul_precision",
                "bf16 operands apply to f32 compute (with compute_dtype bf16 the products are bf16 already)",
            );
        }
        if let Some(l) = &self.lora {
            if l.rank == 0 {
                return bad("lora.rank", "must be >= 1");
            }
            if let Some(a) = l.alpha {
                if !(a.is_finite() && a > 0.0) {
                    return bad("lora.alpha", "must be finite and > 0");
                }
            }
            if let Err(e) = model::lora::check_targets(&l.target_modules) {
                return bad("lora.target_modules", &e.to_string());
            }
        }
        Ok(())
    }
}

/// The GRPO settings a run chooses per phase: the keys of `rzero`'s `[challenger.optim]` and
/// `[solver.optim]` sections, which embed this struct (its `///` field docs are the keys'
/// documentation, printed by `rzero config`), and of `rzero grpo --config`. The rest of
/// [`GrpoConfig`] keeps the reference's values. [`OptimKnobs::grpo_config`] and
/// [`OptimKnobs::loop_config`] are the one place a trainer's and a loop's configuration are
/// built from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimKnobs {
    /// GRPO steps (rollouts) per iteration (reference: Challenger 5, Solver 15).
    pub steps: usize,
    /// AdamW learning rate, constant (reference: 1e-6).
    pub lr: f64,
    /// AdamW weight decay (reference: 1e-2).
    pub weight_decay: f64,
    /// Coefficient of the low-variance KL to the reference policy (reference: 1e-2).
    pub kl_coef: f64,
    /// Gradient-norm clip (reference: 1.0).
    pub max_grad_norm: f64,
    /// PPO clip epsilon low (reference: 0.2).
    pub clip_low: f64,
    /// PPO clip epsilon high, clip-higher (reference: 0.3).
    pub clip_high: f64,
    /// Prompts per AdamW update, veRL `worker.actor.global_batch_size`: each rollout is
    /// shuffled and spent in mini-batches of this many prompts, one update each (reference:
    /// Challenger 16, so 32 updates per step; Solver 128, so 4).
    pub global_batch_size: usize,
    /// Passes over each rollout, veRL `worker.actor.ppo_epochs` (reference: 1).
    pub ppo_epochs: usize,
    /// Sequences per forward/backward pass inside an update (gradient accumulation), veRL
    /// `micro_batch_size_per_device_for_update` (reference: Challenger 2, Solver 1).
    pub micro_batch_size: usize,
    /// Dual-clip constant c: the loss of a negative advantage is capped at -c·A; 0 = off
    /// (reference: 3).
    pub clip_dual: f64,
    /// LoRA rank; 0 = full fine-tuning (the reference). With LoRA the phase's checkpoints
    /// hold the adapter and its export is the merged model.
    #[serde(default)]
    pub lora_rank: usize,
    /// LoRA alpha: the update is scaled by alpha / rank; 0 = 2 x rank.
    #[serde(default)]
    pub lora_alpha: f64,
    /// Modules LoRA adapts in each decoder layer.
    #[serde(default = "all_lora_targets")]
    pub lora_targets: Vec<String>,
    /// Activation recomputation: less memory, about one more forward pass of time.
    #[serde(default)]
    pub recompute: bool,
    /// Shared prompts: each distinct prompt's forward once per micro-batch, its responses
    /// attending to its keys and values (same loss, float reassociation only); false: every
    /// sequence in full.
    #[serde(default = "yes")]
    pub shared_prompts: bool,
    /// Operands of the training matrix products: "f32" (the reference) or "bf16" (rounded
    /// to bf16, summed in f32, as torch's "medium" float32 matmul precision; AMX tiles on
    /// CPUs that have them; weights, gradients and optimizer state stay f32).
    #[serde(default)]
    #[schemars(with = "String")]
    pub matmul_precision: model::ops::MatmulPrecision,
}

fn yes() -> bool {
    true
}

fn all_lora_targets() -> Vec<String> {
    model::lora::ALL_TARGETS.map(String::from).to_vec()
}

/// The reference's values ([`GrpoConfig::default`]) with the Solver's steps and batch sizes.
impl Default for OptimKnobs {
    fn default() -> Self {
        let g = GrpoConfig::default();
        Self {
            steps: 15,
            lr: g.lr,
            weight_decay: g.weight_decay,
            kl_coef: g.kl_coef,
            max_grad_norm: g.max_grad_norm,
            clip_low: g.clip_ratio_low,
            clip_high: g.clip_ratio_high,
            global_batch_size: 128,
            ppo_epochs: 1,
            micro_batch_size: g.micro_batch_size,
            clip_dual: g.clip_ratio_dual.unwrap_or(0.0),
            lora_rank: 0,
            lora_alpha: 0.0,
            lora_targets: all_lora_targets(),
            recompute: g.recompute,
            shared_prompts: g.shared_prompts,
            matmul_precision: g.matmul_precision,
        }
    }
}

impl OptimKnobs {
    /// The trainer's configuration for a phase whose rollouts sample at `temperature`: the
    /// log-probs are computed at that temperature (`logits / T`), as the reference's actor
    /// does with its rollout temperature; 0 (greedy rollouts) trains at 1. The loss is
    /// aggregated as the reference code does ([`LossAgg::MicrobatchTokenMean`]); every other
    /// field keeps [`GrpoConfig::default`].
    pub fn grpo_config(&self, temperature: f64, seed: u64, dtype: ComputeDtype) -> GrpoConfig {
        GrpoConfig {
            temperature: if temperature > 0.0 { temperature } else { 1.0 },
            lr: self.lr,
            weight_decay: self.weight_decay,
            kl_coef: self.kl_coef,
            max_grad_norm: self.max_grad_norm,
            clip_ratio_low: self.clip_low,
            clip_ratio_high: self.clip_high,
            clip_ratio_dual: (self.clip_dual > 0.0).then_some(self.clip_dual),
            micro_batch_size: self.micro_batch_size,
            lora: (self.lora_rank > 0).then(|| LoraConfig {
                rank: self.lora_rank,
                alpha: (self.lora_alpha > 0.0).then_some(self.lora_alpha),
                target_modules: self.lora_targets.clone(),
                merge_on_save: false,
            }),
            recompute: self.recompute,
            shared_prompts: self.shared_prompts,
            matmul_precision: self.matmul_precision,
            loss_agg: LossAgg::MicrobatchTokenMean,
            seed,
            compute_dtype: dtype,
            ..GrpoConfig::default()
        }
    }

    /// The loop's configuration: `steps`, `global_batch_size` and `ppo_epochs` from the
    /// knobs, a checkpoint every step, no extra row fields; `seed` shuffles the mini-batches.
    pub fn loop_config(
        &self,
        work_dir: PathBuf,
        metrics_path: PathBuf,
        seed: u64,
    ) -> crate::LoopConfig {
        crate::LoopConfig {
            steps: self.steps as u64,
            global_batch_size: self.global_batch_size,
            ppo_epochs: self.ppo_epochs,
            save_every: 1,
            work_dir,
            metrics_path,
            seed,
            row_extra: Default::default(),
        }
    }

    /// Checks the ranges a run needs (`global_batch_size`, `ppo_epochs` and
    /// `micro_batch_size` at least 1, a positive `lr`, ...); the message starts with the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("global_batch_size", self.global_batch_size),
            ("ppo_epochs", self.ppo_epochs),
            ("micro_batch_size", self.micro_batch_size),
        ] {
            if v == 0 {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err("lr: must be a positive number".into());
        }
        if !(self.clip_dual == 0.0 || (self.clip_dual > 1.0 && self.clip_dual.is_finite())) {
            return Err("clip_dual: must be 0 (off) or > 1".into());
        }
        if !(self.lora_alpha >= 0.0 && self.lora_alpha.is_finite()) {
            return Err("lora_alpha: must be >= 0 (0 = 2 x rank)".into());
        }
        if self.lora_rank > 0 {
            if let Err(e) = model::lora::check_targets(&self.lora_targets) {
                return Err(format!("lora_targets: {e}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_values_and_unknown_fields_fail() {
        let c: GrpoConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, GrpoConfig::default());
        assert_eq!(c.loss_agg, LossAgg::SeqMeanTokenMean);
        let c: GrpoConfig =
            serde_json::from_str(r#"{"lr": 0.001, "loss_agg": "seq-mean-token-sum-norm"}"#)
                .unwrap();
        assert_eq!(c.lr, 1e-3);
        assert_eq!(c.loss_agg, LossAgg::SeqMeanTokenSumNorm);
        assert!(serde_json::from_str::<GrpoConfig>(r#"{"learning_rate": 1}"#).is_err());
        let bad = GrpoConfig {
            micro_batch_size: 0,
            ..Default::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("micro_batch_size"), "{err}");
        assert!(GrpoConfig::default().validate().is_ok());
    }

    #[test]
    fn matmul_precision_is_read_and_checked() {
        use model::ops::MatmulPrecision;
        let c: GrpoConfig = toml::from_str("matmul_precision = \"bf16\"\n").unwrap();
        assert_eq!(c.matmul_precision, MatmulPrecision::Bf16);
        assert!(c.validate().is_ok());
        assert_eq!(GrpoConfig::default().matmul_precision, MatmulPrecision::F32);
        assert!(toml::from_str::<GrpoConfig>("matmul_precision = \"f16\"\n").is_err());
        let both = GrpoConfig {
            compute_dtype: ComputeDtype::Bf16,
            ..c
        };
        let err = both.validate().unwrap_err().to_string();
        assert!(err.contains("grpo.matmul_precision"), "{err}");
    }

    #[test]
    fn lora_section_defaults_and_checks() {
        let c: GrpoConfig = toml::from_str("recompute = true\n[lora]\nrank = 16\n").unwrap();
        let l = c.lora.clone().unwrap();
        assert!(c.recompute);
        assert_eq!((l.rank, l.alpha(), l.scale()), (16, 32.0, 2.0));
        assert_eq!(l.target_modules.len(), 7);
        assert!(!l.merge_on_save);
        assert!(c.validate().is_ok());
        let bad = GrpoConfig {
            lora: Some(LoraConfig {
                target_modules: vec!["lm_head".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("lora.target_modules") && e.contains("lm_head"),
            "{e}"
        );
        assert!(toml::from_str::<GrpoConfig>("[lora]\nrnak = 4\n").is_err());
    }

    /// The knobs of a run build the trainer's configuration: the reference's values
    /// elsewhere, the reference code's loss aggregation, the log-probs at the rollout
    /// temperature (1 for greedy rollouts), `clip_dual = 0` and `lora_alpha = 0` as "off"
    /// and "2 x rank".
    #[test]
    fn knobs_build_the_trainer_and_loop_configs() {
        let k = OptimKnobs::default();
        let c = k.grpo_config(0.6, 7, ComputeDtype::Bf16);
        let want = GrpoConfig {
            temperature: 0.6,
            seed: 7,
            compute_dtype: ComputeDtype::Bf16,
            loss_agg: LossAgg::MicrobatchTokenMean,
            ..GrpoConfig::default()
        };
        assert_eq!(c, want);
        assert_eq!(k.grpo_config(1.0, 1, ComputeDtype::F32).temperature, 1.0);
        assert_eq!(k.grpo_config(0.0, 1, ComputeDtype::F32).temperature, 1.0);
        let k = OptimKnobs {
            lr: 2e-5,
            weight_decay: 0.5,
            kl_coef: 0.0,
            max_grad_norm: 0.25,
            clip_low: 0.1,
            clip_high: 0.4,
            micro_batch_size: 3,
            clip_dual: 0.0,
            lora_rank: 4,
            lora_targets: vec!["q_proj".into()],
            recompute: true,
            shared_prompts: false,
            ..OptimKnobs::default()
        };
        let c = k.grpo_config(1.0, 0, ComputeDtype::F32);
        assert_eq!((c.lr, c.weight_decay, c.kl_coef), (2e-5, 0.5, 0.0));
        assert_eq!(
            (c.max_grad_norm, c.clip_ratio_low, c.clip_ratio_high),
            (0.25, 0.1, 0.4)
        );
        assert_eq!((c.micro_batch_size, c.clip_ratio_dual), (3, None));
        assert!(c.recompute && !c.shared_prompts);
        let l = c.lora.unwrap();
        assert_eq!((l.rank, l.alpha, l.alpha()), (4, None, 8.0));
        assert_eq!(
            (l.target_modules, l.merge_on_save),
            (vec!["q_proj".to_string()], false)
        );
        let alpha = OptimKnobs {
            lora_alpha: 3.0,
            ..k
        };
        assert_eq!(
            alpha
                .grpo_config(1.0, 0, ComputeDtype::F32)
                .lora
                .unwrap()
                .alpha,
            Some(3.0)
        );
        let k = OptimKnobs {
            steps: 5,
            global_batch_size: 16,
            ppo_epochs: 2,
            ..OptimKnobs::default()
        };
        let lc = k.loop_config("w".into(), "m.jsonl".into(), 11);
        assert_eq!((lc.steps, lc.global_batch_size, lc.ppo_epochs), (5, 16, 2));
        assert_eq!((lc.save_every, lc.seed), (1, 11));
        assert_eq!(
            (lc.work_dir, lc.metrics_path),
            ("w".into(), "m.jsonl".into())
        );
        assert!(lc.row_extra.is_empty());
    }

    /// The ranges a run needs; each message starts with the key.
    #[test]
    fn knobs_are_checked_by_key() {
        let ok = OptimKnobs::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (
                OptimKnobs {
                    global_batch_size: 0,
                    ..ok.clone()
                },
                "global_batch_size:",
            ),
            (
                OptimKnobs {
                    ppo_epochs: 0,
                    ..ok.clone()
                },
                "ppo_epochs:",
            ),
            (
                OptimKnobs {
                    micro_batch_size: 0,
                    ..ok.clone()
                },
                "micro_batch_size:",
            ),
            (
                OptimKnobs {
                    lr: 0.0,
                    ..ok.clone()
                },
                "lr:",
            ),
            (
                OptimKnobs {
                    lr: f64::INFINITY,
                    ..ok.clone()
                },
                "lr:",
            ),
            (
                OptimKnobs {
                    clip_dual: 1.0,
                    ..ok.clone()
                },
                "clip_dual:",
            ),
            (
                OptimKnobs {
                    lora_alpha: -1.0,
                    ..ok.clone()
                },
                "lora_alpha:",
            ),
            (
                OptimKnobs {
                    lora_rank: 2,
                    lora_targets: vec!["lm_head".into()],
                    ..ok.clone()
                },
                "lora_targets:",
            ),
        ];
        for (k, key) in cases {
            let e = k.validate().unwrap_err();
            assert!(e.starts_with(key), "{e}");
        }
        // LoRA targets are only checked when LoRA is on
        let off = OptimKnobs {
            lora_targets: vec!["lm_head".into()],
            ..ok
        };
        assert_eq!(off.validate(), Ok(()));
    }
}
