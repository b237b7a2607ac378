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
    /// [`OptimKnobs::micro_batch_size`] consecutive sequences, then the mean over micro-batches
    /// (R-Zero's Challenger runs micro-batch 2; with micro-batch 1 this equals
    /// `seq-mean-token-mean`, with the whole batch `token-mean`).
    MicrobatchTokenMean,
}

/// LoRA as the trainer runs it: the `lora_*` keys of [`OptimKnobs`] with LoRA on, resolved
/// by [`GrpoConfig::lora`].
///
/// Every target module of every decoder layer gets `A` [r, in] (kaiming-uniform like PEFT,
/// drawn from a ChaCha8 stream of [`GrpoConfig::seed`]) and `B` [out, r] (zeros); the
/// policy's weight is `W + (alpha / r)·B·A` with `W` frozen. No dropout, no bias (PEFT's
/// `lora_dropout = 0`, `bias = "none"`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank r (at least 1).
    pub rank: usize,
    /// α: the update is scaled by `alpha / rank`. `None`: `2·rank` (scale 2; PEFT's own
    /// default is a fixed 8).
    pub alpha: Option<f64>,
    /// Adapted modules in each decoder layer, from `q_proj k_proj v_proj o_proj gate_proj
    /// up_proj down_proj`.
    pub target_modules: Vec<String>,
    /// [`GrpoConfig::merge_lora_on_save`].
    pub merge_on_save: bool,
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

/// GRPO hyper-parameters: the knobs a run chooses ([`OptimKnobs`], each documented there)
/// and the rest of the step, which keeps the reference's values. `#[serde(default)]`: a
/// JSON object may name only what it changes (but `optim`, when given, in full).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// Learning rate, weight decay (applied to every parameter, norms and embeddings too),
    /// gradient clip (a non-finite norm always skips the step), PPO clips, KL coefficient,
    /// micro-batch, LoRA, recomputation, shared prompts and product precision. Its `steps`,
    /// `global_batch_size` and `ppo_epochs` are the loop's ([`OptimKnobs::loop_config`]);
    /// the trainer does not read them.
    pub optim: OptimKnobs,
    /// AdamW betas. Reference: (0.9, 0.999).
    pub betas: [f64; 2],
    /// AdamW epsilon (added to `sqrt(v̂)`). Reference: 1e-8.
    pub eps: f64,
    /// Linear warmup steps: step k (0-based) uses `lr · min(1, (k+1)/warmup_steps)`.
    /// Reference: 0 (constant learning rate).
    pub warmup_steps: u64,
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
    /// Rows of the hidden state per vocabulary projection chunk in the log-softmax
    /// (bounds the `rows × V` logits alive at once).
    pub logprob_chunk_rows: usize,
    /// Sampling temperature the log-probs are computed at (`logits / T`). Reference: 1.0.
    pub temperature: f64,
    /// Seed of the trainer's RNG (data order and sampling by the driver).
    pub seed: u64,
    /// Dtype of the forward and backward computation (`f32` or `bf16`). With `bf16` the
    /// trained parameters, their gradients and the AdamW state stay f32 (master weights);
    /// each forward casts the weight matrices to bf16 (norm weights and biases stay f32), the
    /// residual stream, log-softmax and loss are f32, the rollout/reference policies hold bf16
    /// copies, and checkpoints are saved in bf16 (the f32 master weights go to
    /// `optimizer.safetensors`). Default `f32`.
    pub compute_dtype: ComputeDtype,
    /// With LoRA, checkpoints also hold the merged model (`model/`, a full Hugging Face
    /// folder) beside the adapter (`adapter/`). Default false: the adapter only.
    pub merge_lora_on_save: bool,
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

/// The reference's values, with [`OptimKnobs::default`]'s knobs.
impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            optim: OptimKnobs::default(),
            betas: [0.9, 0.999],
            eps: 1e-8,
            warmup_steps: 0,
            kl_clamp: 10.0,
            adv_eps: 1e-6,
            scale_adv_by_std: true,
            drop_equal_reward_groups: false,
            loss_agg: LossAgg::SeqMeanTokenMean,
            loss_norm_len: None,
            logprob_chunk_rows: 256,
            temperature: 1.0,
            seed: 0,
            compute_dtype: ComputeDtype::F32,
            merge_lora_on_save: false,
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
    /// Checks value ranges (the knobs the trainer reads, then the rest); returns an error
    /// naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| Err(Error::invalid(format!("grpo.{field}: {why}")));
        if let Err(e) = self.optim.check_trainer_knobs() {
            return Err(Error::invalid(format!("grpo.optim.{e}")));
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return bad(&format!("betas[{i}]"), "must be in [0, 1)");
            }
        }
        if !gt(self.eps, 0.0) {
            return bad("eps", "must be > 0");
        }
        if !gt(self.kl_clamp, 0.0) {
            return bad("kl_clamp", "must be > 0");
        }
        if !ge(self.adv_eps, 0.0) {
            return bad("adv_eps", "must be >= 0");
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
        if self.optim.matmul_precision != model::ops::MatmulPrecision::F32
            && self.compute_dtype != ComputeDtype::F32
        {
            return bad(
                "optim.matmul_precision",
                "bf16 operands apply to f32 compute (with compute_dtype bf16 the products are bf16 already)",
            );
        }
        Ok(())
    }

    /// LoRA as the trainer runs it: `None` for full fine-tuning (`lora_rank = 0`).
    pub fn lora(&self) -> Option<LoraConfig> {
        let k = &self.optim;
        (k.lora_rank > 0).then(|| LoraConfig {
            rank: k.lora_rank,
            alpha: (k.lora_alpha > 0.0).then_some(k.lora_alpha),
            target_modules: k.lora_targets.clone(),
            merge_on_save: self.merge_lora_on_save,
        })
    }

    /// The dual-clip constant `c`, `None` when off (`clip_dual = 0`).
    pub fn clip_dual(&self) -> Option<f64> {
        (self.optim.clip_dual > 0.0).then_some(self.optim.clip_dual)
    }

    /// A `config` object of `trainer_state.json` format 1, written before this struct held
    /// the [`OptimKnobs`] (to eae0885): the knobs' keys move into `optim` (`clip_ratio_low`,
    /// `clip_ratio_high` and `clip_ratio_dual` (null: 0) become `clip_low`, `clip_high` and
    /// `clip_dual`; the `lora` object becomes `lora_rank`, `lora_alpha` (null: 0),
    /// `lora_targets` and `merge_lora_on_save`). Keys the file lacks keep their defaults;
    /// an unknown key is still an error.
    pub fn from_format1(old: serde_json::Value) -> Result<Self> {
        use serde_json::{json, Value};
        let bad = |e: String| Error::invalid(format!("trainer state config (format 1): {e}"));
        let Value::Object(old) = old else {
            return Err(bad("not an object".into()));
        };
        let mut new =
            serde_json::to_value(GrpoConfig::default()).map_err(|e| bad(e.to_string()))?;
        let knob_keys: Vec<String> = new["optim"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let zero_if_null = |v: Value| if v.is_null() { json!(0.0) } else { v };
        for (key, v) in old {
            let moved = match (key.as_str(), v) {
                ("clip_ratio_low", v) => vec![("clip_low".to_string(), v)],
                ("clip_ratio_high", v) => vec![("clip_high".to_string(), v)],
                ("clip_ratio_dual", v) => vec![("clip_dual".to_string(), zero_if_null(v))],
                ("lora", Value::Null) => Vec::new(),
                ("lora", Value::Object(l)) => {
                    // the old section's defaults: rank 8, every target
                    let mut m = vec![("lora_rank".to_string(), json!(8))];
                    for (k, v) in l {
                        m.push(match k.as_str() {
                            "rank" => ("lora_rank".into(), v),
                            "alpha" => ("lora_alpha".into(), zero_if_null(v)),
                            "target_modules" => ("lora_targets".into(), v),
                            "merge_on_save" => ("merge_lora_on_save".into(), v),
                            _ => (format!("lora.{k}"), v),
                        });
                    }
                    m
                }
                (k, v) => vec![(k.to_string(), v)],
            };
            for (k, v) in moved {
                if knob_keys.contains(&k) {
                    new["optim"][k] = v;
                } else {
                    new[k] = v;
                }
            }
        }
        serde_json::from_value(new).map_err(|e| bad(e.to_string()))
    }
}

/// The GRPO settings a run chooses per phase: the keys of `rzero`'s `[challenger.optim]` and
/// `[solver.optim]` sections, which embed this struct (its `///` field docs are the keys'
/// documentation, printed by `rzero config`), and of `rzero grpo --config`; the trainer's
/// [`GrpoConfig::optim`]. [`OptimKnobs::grpo_config`] and [`OptimKnobs::loop_config`] are
/// the one place a trainer's and a loop's configuration are built from them.
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

/// The reference's values with the Solver's steps and batch sizes.
impl Default for OptimKnobs {
    fn default() -> Self {
        Self {
            steps: 15,
            lr: 1e-6,
            weight_decay: 1e-2,
            kl_coef: 1e-2,
            max_grad_norm: 1.0,
            clip_low: 0.2,
            clip_high: 0.3,
            global_batch_size: 128,
            ppo_epochs: 1,
            micro_batch_size: 1,
            clip_dual: 3.0,
            lora_rank: 0,
            lora_alpha: 0.0,
            lora_targets: all_lora_targets(),
            recompute: false,
            shared_prompts: true,
            matmul_precision: model::ops::MatmulPrecision::F32,
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
            optim: self.clone(),
            temperature: if temperature > 0.0 { temperature } else { 1.0 },
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

    /// Checks the ranges a run needs (`global_batch_size` and `ppo_epochs` at least 1, then
    /// the trainer's knobs: a positive `lr`, ...); the message starts with the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("global_batch_size", self.global_batch_size),
            ("ppo_epochs", self.ppo_epochs),
        ] {
            if v == 0 {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        self.check_trainer_knobs()
    }

    /// The ranges of the knobs the trainer reads (all but `steps`, `global_batch_size` and
    /// `ppo_epochs`, which `rzero grpo` lets be 0 for "the whole rollout").
    fn check_trainer_knobs(&self) -> std::result::Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("{key}: {why}"));
        if self.micro_batch_size == 0 {
            return bad("micro_batch_size", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be a positive number");
        }
        for (key, v) in [
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
            ("clip_high", self.clip_high),
            ("kl_coef", self.kl_coef),
        ] {
            if !ge(v, 0.0) {
                return bad(key, "must be >= 0");
            }
        }
        if !(0.0..1.0).contains(&self.clip_low) {
            return bad("clip_low", "must be in [0, 1)");
        }
        if !(self.clip_dual == 0.0 || (self.clip_dual > 1.0 && self.clip_dual.is_finite())) {
            return bad("clip_dual", "must be 0 (off) or > 1");
        }
        if !(self.lora_alpha >= 0.0 && self.lora_alpha.is_finite()) {
            return bad("lora_alpha", "must be >= 0 (0 = 2 x rank)");
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
        assert_eq!(
            (c.optim.lr, c.clip_dual(), c.lora()),
            (1e-6, Some(3.0), None)
        );
        let c: GrpoConfig =
            serde_json::from_str(r#"{"warmup_steps": 3, "loss_agg": "seq-mean-token-sum-norm"}"#)
                .unwrap();
        assert_eq!(c.warmup_steps, 3);
        assert_eq!(c.loss_agg, LossAgg::SeqMeanTokenSumNorm);
        assert!(serde_json::from_str::<GrpoConfig>(r#"{"learning_rate": 1}"#).is_err());
        // a knob is a key of `optim` only
        assert!(serde_json::from_str::<GrpoConfig>(r#"{"lr": 1}"#).is_err());
        let back: GrpoConfig =
            serde_json::from_str(&serde_json::to_string(&GrpoConfig::default()).unwrap()).unwrap();
        assert_eq!(back, GrpoConfig::default());
        let mut bad = GrpoConfig::default();
        bad.optim.micro_batch_size = 0;
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("grpo.optim.micro_batch_size"), "{err}");
        assert!(GrpoConfig::default().validate().is_ok());
        // the loop's knobs are not the trainer's: `rzero grpo` runs global_batch_size 0
        bad.optim.micro_batch_size = 1;
        bad.optim.global_batch_size = 0;
        assert!(bad.validate().is_ok());
    }

    #[test]
    fn matmul_precision_is_checked_against_the_compute_dtype() {
        use model::ops::MatmulPrecision;
        let mut c = GrpoConfig::default();
        assert_eq!(c.optim.matmul_precision, MatmulPrecision::F32);
        c.optim.matmul_precision = MatmulPrecision::Bf16;
        assert!(c.validate().is_ok());
        let both = GrpoConfig {
            compute_dtype: ComputeDtype::Bf16,
            ..c
        };
        let err = both.validate().unwrap_err().to_string();
        assert!(err.contains("grpo.optim.matmul_precision"), "{err}");
    }

    #[test]
    fn lora_resolves_from_the_knobs_and_is_checked() {
        let mut c = GrpoConfig::default();
        c.optim.lora_rank = 16;
        c.merge_lora_on_save = true;
        let l = c.lora().unwrap();
        assert_eq!(
            (l.rank, l.alpha, l.alpha(), l.scale()),
            (16, None, 32.0, 2.0)
        );
        assert_eq!(l.target_modules.len(), 7);
        assert!(l.merge_on_save);
        assert!(c.validate().is_ok());
        c.optim.lora_alpha = 8.0;
        assert_eq!(c.lora().unwrap().alpha, Some(8.0));
        c.optim.lora_targets = vec!["lm_head".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("lora_targets") && e.contains("lm_head"), "{e}");
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
        assert_eq!(c.optim, k);
        assert_eq!(c.clip_dual(), None);
        let l = c.lora().unwrap();
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
                .lora()
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
                    weight_decay: f64::NAN,
                    ..ok.clone()
                },
                "weight_decay:",
            ),
            (
                OptimKnobs {
                    kl_coef: -1.0,
                    ..ok.clone()
                },
                "kl_coef:",
            ),
            (
                OptimKnobs {
                    clip_low: 1.0,
                    ..ok.clone()
                },
                "clip_low:",
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
