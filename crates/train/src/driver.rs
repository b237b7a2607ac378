//! The GRPO loop shared by `rzero grpo` and the R-Zero phases: data order, rollouts through
//! a caller-supplied [`Rollout`], steps, `metrics.jsonl` and checkpoints, with resume.
//!
//! ```text
//! OUT/
//!   checkpoint/      latest checkpoint (see crate::checkpoint), replaced atomically
//!   metrics.jsonl    one StepMetrics object per line, rewritten atomically after each step
//! ```
//!
//! Data order is a pure function of (seed, step): position `k·B + j` of the endless stream
//! is item `perm_e[(k·B + j) mod N]` of epoch `e`'s permutation, so a resumed run sees the
//! same batches. Sampling randomness comes from the trainer's RNG, which checkpoints save.

use std::path::{Path, PathBuf};

use model::Model;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::ModelFiles;
use crate::trainer::{Group, StepMetrics, Trainer};
use crate::{Error, Result};

/// Produces the groups of one step: samples responses to each item's prompt with `policy`
/// and scores them. The R-Zero loop plugs the inference engine in here.
pub trait Rollout<P> {
    /// One [`Group`] per item (or fewer: items may be skipped).
    fn rollout(&mut self, policy: &Model, items: &[&P], rng: &mut ChaCha8Rng)
        -> Result<Vec<Group>>;
}

impl<P, F> Rollout<P> for F
where
    F: FnMut(&Model, &[&P], &mut ChaCha8Rng) -> Result<Vec<Group>>,
{
    fn rollout(
        &mut self,
        policy: &Model,
        items: &[&P],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Group>> {
        self(policy, items, rng)
    }
}

/// Loop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopConfig {
    /// Total training steps (a resumed run continues up to this).
    pub steps: u64,
    /// Items (prompts) per step.
    pub batch_size: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Seed of the data order.
    pub data_seed: u64,
}

/// The items of step `k` (0-based).
pub fn batch_indices(n: usize, batch: usize, step: u64, seed: u64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(batch);
    let mut perm_epoch = u64::MAX;
    let mut perm: Vec<usize> = Vec::new();
    for j in 0..batch as u64 {
        let pos = step * batch as u64 + j;
        let epoch = pos / n as u64;
        if epoch != perm_epoch {
            perm = (0..n).collect();
            perm.shuffle(&mut ChaCha8Rng::seed_from_u64(
                seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            perm_epoch = epoch;
        }
        out.push(perm[(pos % n as u64) as usize]);
    }
    out
}

/// A fresh 64-bit seed drawn from `rng` (e.g. a sampling request's seed).
pub fn next_seed(rng: &mut ChaCha8Rng) -> u64 {
    use rand::RngCore;
    rng.next_u64()
}

/// Path of the checkpoint folder under `out`.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn read_metrics(path: &Path, upto: u64) -> Result<Vec<String>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut keep = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            msg: format!("line {}: {e}", i + 1),
        })?;
        if v["step"].as_u64().is_some_and(|s| s <= upto) {
            keep.push(line.to_string());
        }
    }
    Ok(keep)
}

/// Runs GRPO on `items` until `cfg.steps`, resuming from `OUT/checkpoint` if present.
/// `on_step` sees every step's metrics (progress bars live in the caller). Returns the
/// metrics of the steps run by this call.
pub fn run<P>(
    trainer: &mut Trainer,
    items: &[P],
    rollout: &mut dyn Rollout<P>,
    cfg: &LoopConfig,
    files: &ModelFiles<'_>,
    on_step: &mut dyn FnMut(&StepMetrics),
) -> Result<Vec<StepMetrics>> {
    if items.is_empty() {
        return Err(Error::invalid("no training items"));
    }
    if cfg.batch_size == 0 {
        return Err(Error::invalid("batch size must be >= 1"));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::io(&cfg.out_dir, e))?;
    let ckpt = checkpoint_dir(&cfg.out_dir);
    if ckpt.join("trainer_state.json").is_file() {
        let st = trainer.restore_checkpoint(&ckpt)?;
        tracing::info!(step = st.step, "resuming");
    }
    let metrics_path = cfg.out_dir.join("metrics.jsonl");
    let mut lines = read_metrics(&metrics_path, trainer.step_count())?;
    let mut done = Vec::new();
    while trainer.step_count() < cfg.steps {
        let k = trainer.step_count();
        let idx = batch_indices(items.len(), cfg.batch_size, k, cfg.data_seed);
        let batch: Vec<&P> = idx.iter().map(|&i| &items[i]).collect();
        let groups = {
            let (policy, rng) = trainer.policy_and_rng();
            rollout.rollout(policy, &batch, rng)?
        };
        let m = trainer.step(&groups)?;
        on_step(&m);
        lines.push(serde_json::to_string(&m).map_err(|e| Error::invalid(e.to_string()))?);
        model::save::write_atomic(&metrics_path, (lines.join("\n") + "\n").as_bytes())?;
        let s = trainer.step_count();
        if s == cfg.steps || (cfg.save_every > 0 && s.is_multiple_of(cfg.save_every)) {
            trainer.save_checkpoint(&ckpt, files)?;
        }
        done.push(m);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_order_covers_each_epoch_and_is_a_function_of_the_step() {
        let n = 10;
        let mut seen = Vec::new();
        for k in 0..5 {
            seen.extend(batch_indices(n, 2, k, 7));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(n, 3, 4, 7), batch_indices(n, 3, 4, 7));
        assert_ne!(batch_indices(n, 10, 0, 7), batch_indices(n, 10, 1, 7));
    }
}
