/*!
GRPO training for rzero: group-relative advantages, PPO-style clipped surrogate with
clip-higher and dual clip, low-variance KL to a frozen reference policy, loss aggregation,
micro-batched gradient accumulation, a fused AdamW over f32 master weights, and checkpoints
(a Hugging Face folder plus optimizer and RNG state) for exact resume.

The crate never names the Challenger or the Solver: a step takes groups of
(prompt ids, completion ids, reward). Sampling comes from the caller.

- [`GrpoConfig`]: hyper-parameters, defaults = R-Zero's reference values; it holds the
  [`OptimKnobs`], the part a run chooses (the keys of a run configuration, each declared and
  documented once), from which the trainer's and the loop's configurations are built.
- [`advantages`], [`loss`]: the math, per group and per token.
- [`adamw`]: flat-buffer AdamW and gradient clipping.
- [`Trainer`]: one GRPO step on [`Group`]s; [`StepMetrics`] per step. Full fine-tuning, or
  LoRA adapters ([`config::LoraConfig`], PEFT-compatible), with optional activation
  recomputation ([`OptimKnobs::recompute`]).
- [`checkpoint`]: `Trainer::save_checkpoint` / `restore_checkpoint` (HF folder and/or PEFT
  adapter + optimizer + RNG state, atomic).
- [`driver`]: the one GRPO loop (a rollout per step via [`Rollout`], journaled; old and
  reference log-probs once per rollout; shuffled mini-batches of `global_batch_size` prompts,
  one AdamW update each, for `ppo_epochs` passes; metric rows per update and per step;
  checkpoints; resume) that `rzero grpo` and the R-Zero Solver/Challenger phases run.
*/
#![deny(missing_docs)]

pub mod adamw;
pub mod advantages;
pub mod checkpoint;
pub mod config;
pub mod driver;
pub mod error;
pub mod loss;
pub mod row;
pub mod trainer;

pub use checkpoint::{ModelFiles, TrainerState};
pub use config::{ComputeDtype, GrpoConfig, LoraConfig, LossAgg, OptimKnobs};
pub use driver::{LoopConfig, Progress, Rollout, RolloutBatch};
pub use error::{Error, Result};
pub use rand_chacha::ChaCha8Rng;
pub use row::{StepStats, UpdateMeans};
pub use trainer::{GradStats, Group, Response, StepMetrics, Trainer, UpdateStats};
