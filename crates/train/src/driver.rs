//! The one GRPO loop: `rzero grpo` and the R-Zero Challenger and Solver phases all run
//! [`run`]. A step is one rollout spent in several optimizer updates, as veRL's
//! `ray_trainer.py` and `dp_actor.update_policy` run it:
//!
//! 1. the caller's [`Rollout`] samples `rollout_batch_size` prompts × G responses with the
//!    current policy and rewards them (the Challenger's reward sees the whole rollout);
//! 2. the rollout is journaled (`WORK/rollout.json`), so a resumed step does not sample again;
//! 3. its groups are shuffled (a pure function of seed, step and epoch) and split into
//!    mini-batches of `global_batch_size` prompts;
//! 4. the old policy's log-probs (and the reference policy's, for the KL) are computed once,
//!    before the first update, each micro-batch laid out exactly as the update lays it out:
//!    the first mini-batch's ratio is exactly 1 and the clips act on the later ones;
//! 5. each mini-batch is one AdamW update (gradient accumulation over micro-batches inside
//!    it), for `ppo_epochs` passes;
//! 6. the step ends with a checkpoint (`WORK/checkpoint/`), then the journal is dropped.
//!
//! ```text
//! WORK/
//!   checkpoint/      latest checkpoint (see crate::checkpoint), replaced atomically
//!   rollout.json     the current step's rollout (groups, rewards, metrics, RNG after sampling)
//! METRICS            one JSON object per line (rewritten atomically after every update):
//!                    one row per optimizer update ("update": u) and one per step
//!                    (crate::row: StepStats)
//! ```
//!
//! Resume: the trainer restores its checkpoint (weights, AdamW, RNG, step count); rows of
//! steps after it are dropped; a journaled rollout of the next step is loaded instead of
//! sampled. A kill between two updates of a rollout therefore redoes that step's updates
//! from its start, deterministically: the resumed run equals an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::Model;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checkpoint::{ModelFiles, RngState};
pub use crate::row::{read_rows, StepStats};
use crate::row::{update_row, write_rows};
use crate::trainer::{Group, Response, StepMetrics, Trainer};
use crate::{Error, Result};

/// One sampled and rewarded rollout.
#[derive(Debug, Clone, Default)]
pub struct RolloutBatch {
    /// One group per prompt (G responses with rewards).
    pub groups: Vec<Group>,
    /// Rollout-level metrics (reward parts, format rates, ...), merged into the step's row.
    pub metrics: Map<String, Value>,
}

/// Samples and rewards the rollout of one step with the current policy. The R-Zero phases
/// and `rzero grpo` plug the inference engine and their rewards in here.
pub trait Rollout {
    /// The rollout of step `step` (0-based). Randomness should come from `rng` (saved in
    /// checkpoints) or be a function of `step`.
    fn rollout(&mut self, step: u64, policy: &Model, rng: &mut ChaCha8Rng) -> Result<RolloutBatch>;
}

impl<F> Rollout for F
where
    F: FnMut(u64, &Model, &mut ChaCha8Rng) -> Result<RolloutBatch>,
{
    fn rollout(&mut self, step: u64, policy: &Model, rng: &mut ChaCha8Rng) -> Result<RolloutBatch> {
        self(step, policy, rng)
    }
}

/// Loop settings (veRL's names where it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct LoopConfig {
    /// Total steps (rollouts); a resumed run continues up to this.
    pub steps: u64,
    /// Prompts per optimizer update (`worker.actor.global_batch_size`); 0 = the whole
    /// rollout in one update.
    pub global_batch_size: usize,
    /// Passes over each rollout (`worker.actor.ppo_epochs`).
    pub ppo_epochs: usize,
    /// Checkpoint every this many steps (and always after the last); 1 = every step.
    pub save_every: u64,
    /// Folder of the checkpoint and the rollout journal.
    pub work_dir: PathBuf,
    /// The metrics file (JSON lines).
    pub metrics_path: PathBuf,
    /// Seed of the mini-batch shuffle.
    pub seed: u64,
    /// Fields added to every metric row (e.g. `iter`, `phase`).
    pub row_extra: Map<String, Value>,
}

/// What the loop reports while it runs.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A rollout was sampled (or loaded from the journal) for step `step` (1-based).
    Rollout {
        /// Step (1-based).
        step: u64,
        /// Updates this step will run.
        updates: usize,
        /// Loaded from the journal instead of sampled.
        resumed: bool,
    },
    /// One optimizer update done.
    Update(&'a StepMetrics),
    /// A step done: its row and its statistics.
    Step(&'a Value, &'a StepStats),
}

/// The items of step `k` (0-based) of an endless seeded stream over `n` items: position
/// `k·B + j` is item `perm_e[(k·B + j) mod n]` of epoch `e`'s permutation.
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

/// The mini-batches of a rollout of `n` groups: a seeded shuffle (a function of `seed`,
/// `step` and `epoch`), split into runs of `global_batch_size` groups (0 = all). The last
/// mini-batch is smaller when `n` is not a multiple.
pub fn minibatches(
    n: usize,
    global_batch_size: usize,
    seed: u64,
    step: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let s = seed
        ^ (step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (epoch as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
    let m = if global_batch_size == 0 {
        n.max(1)
    } else {
        global_batch_size
    };
    order.chunks(m).map(|c| c.to_vec()).collect()
}

/// A fresh 64-bit seed drawn from `rng` (e.g. a sampling request's seed).
pub fn next_seed(rng: &mut ChaCha8Rng) -> u64 {
    use rand::RngCore;
    rng.next_u64()
}

/// Path of the checkpoint folder under `work`.
pub fn checkpoint_dir(work: &Path) -> PathBuf {
    work.join("checkpoint")
}

/// Path of the rollout journal under `work`.
pub fn journal_path(work: &Path) -> PathBuf {
    work.join("rollout.json")
}

/// Puts the work folder back in order after a kill: a checkpoint replaced half-way (the old
/// one renamed aside, the new one not yet in place) gets its old folder back, and the
/// temporary and old siblings (`.checkpoint.tmp-*`, `.checkpoint.old-*`, `.rollout.json.tmp-*`)
/// are removed.
pub fn clean_work_dir(work: &Path) -> Result<()> {
    let ckpt = checkpoint_dir(work);
    let Ok(rd) = std::fs::read_dir(work) else {
        return Ok(());
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    if !ckpt.exists() {
        if let Some(old) = names.iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".checkpoint.old-"))
        }) {
            std::fs::rename(old, &ckpt).map_err(|e| Error::io(old, e))?;
            tracing::warn!(dir = %ckpt.display(), "restored the checkpoint a kill had moved aside");
        }
    }
    for p in names {
        let leftover = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(fsutil::is_leftover);
        if leftover && p.exists() {
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// The journaled rollout of one step.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// Step (0-based) it belongs to.
    step: u64,
    groups: Vec<JGroup>,
    metrics: Map<String, Value>,
    /// The trainer's RNG right after sampling.
    rng: RngState,
}

#[derive(Debug, Serialize, Deserialize)]
struct JGroup {
    prompt: Vec<u32>,
    responses: Vec<(Vec<u32>, f32)>,
    /// Forced tokens (`Response::forced`) as `(response, start, end)` runs; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forced: Vec<(usize, usize, usize)>,
}

/// The runs of `true` in `mask` of response `r`: `(r, start, end)`.
fn forced_runs(r: usize, mask: &[bool]) -> Vec<(usize, usize, usize)> {
    let mut runs = Vec::new();
    let mut j = 0;
    while j < mask.len() {
        if mask[j] {
            let start = j;
            while j < mask.len() && mask[j] {
                j += 1;
            }
            runs.push((r, start, j));
        } else {
            j += 1;
        }
    }
    runs
}

fn to_journal(step: u64, b: &RolloutBatch, rng: &ChaCha8Rng) -> Journal {
    Journal {
        step,
        groups: b
            .groups
            .iter()
            .map(|g| JGroup {
                prompt: g.prompt.clone(),
                responses: g
                    .responses
                    .iter()
                    .map(|r| (r.ids.clone(), r.reward))
                    .collect(),
                forced: g
                    .responses
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| forced_runs(i, &r.forced))
                    .collect(),
            })
            .collect(),
        metrics: b.metrics.clone(),
        rng: RngState::capture(rng),
    }
}

fn from_journal(path: &Path, j: Journal) -> Result<RolloutBatch> {
    let mut groups = Vec::with_capacity(j.groups.len());
    for g in j.groups {
        let mut responses: Vec<Response> = g
            .responses
            .into_iter()
            .map(|(ids, reward)| Response {
                ids,
                reward,
                ..Default::default()
            })
            .collect();
        for (r, start, end) in g.forced {
            let resp = responses
                .get_mut(r)
                .filter(|x| start < end && end <= x.ids.len())
                .ok_or_else(|| Error::BadFile {
                    path: path.to_path_buf(),
                    msg: format!("forced run ({r}, {start}, {end}) is outside the responses"),
                })?;
            resp.forced.resize(resp.ids.len(), false);
            resp.forced[start..end].fill(true);
        }
        groups.push(Group {
            prompt: g.prompt,
            responses,
        });
    }
    Ok(RolloutBatch {
        groups,
        metrics: j.metrics,
    })
}

fn read_journal(path: &Path, step: u64) -> Result<Option<Journal>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let j: Journal = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok((j.step == step).then_some(j))
}

/// The non-finite value of a rollout, if any (a NaN or infinite reward).
fn bad_reward(groups: &[Group]) -> Option<String> {
    for (gi, g) in groups.iter().enumerate() {
        for (ri, r) in g.responses.iter().enumerate() {
            if !r.reward.is_finite() {
                return Some(format!("group {gi} response {ri} has reward {}", r.reward));
            }
        }
    }
    None
}

/// Runs GRPO to `cfg.steps`, resuming from `WORK/checkpoint` (and a journaled rollout) if
/// present. Returns the rows of the steps this call ran.
pub fn run(
    trainer: &mut Trainer,
    rollout: &mut dyn Rollout,
    cfg: &LoopConfig,
    files: &ModelFiles<'_>,
    on_progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<Value>> {
    if cfg.ppo_epochs == 0 {
        return Err(Error::invalid("ppo_epochs must be >= 1"));
    }
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| Error::io(&cfg.work_dir, e))?;
    clean_work_dir(&cfg.work_dir)?;
    let ckpt = checkpoint_dir(&cfg.work_dir);
    if ckpt.join("trainer_state.json").is_file() {
        let st = trainer.restore_checkpoint(&ckpt)?;
        tracing::info!(step = st.step, "resuming");
    }
    let journal = journal_path(&cfg.work_dir);
    let mut rows = read_rows(&cfg.metrics_path, trainer.step_count())?;
    let mut done = Vec::new();
    while trainer.step_count() < cfg.steps {
        let k = trainer.step_count();
        let t0 = Instant::now();
        // 1-2. The rollout: from the journal, or sampled and journaled.
        let (mut batch, resumed) = step_rollout(trainer, rollout, &journal, k)?;
        let t_rollout = t0.elapsed().as_secs_f64();
        if let Some(why) = bad_reward(&batch.groups) {
            return Err(Error::Diverged(format!("step {}: {why}", k + 1)));
        }
        batch.groups.retain(|g| !g.responses.is_empty());
        // 3. Mini-batches of every epoch.
        let plans: Vec<Vec<Vec<usize>>> = (0..cfg.ppo_epochs)
            .map(|e| minibatches(batch.groups.len(), cfg.global_batch_size, cfg.seed, k, e))
            .collect();
        let n_updates: usize = plans.iter().map(|p| p.len()).sum();
        on_progress(Progress::Rollout {
            step: k + 1,
            updates: n_updates,
            resumed,
        });
        // 4. Old and reference log-probs, once, laid out as epoch 0's mini-batches.
        //    A single update needs no old log-probs: the ratio is 1 by definition.
        let groups = fill_logprobs(trainer, batch.groups, &plans[0], n_updates > 1)?;
        // 5. The updates.
        let ups = run_updates(trainer, k, &groups, &plans, cfg, &mut rows, on_progress)?;
        // The step's row: the rollout's metrics, then means of the update statistics.
        let responses: Vec<Vec<Response>> = groups.into_iter().map(|g| g.responses).collect();
        let stats = StepStats::of(
            k + 1,
            &responses,
            &ups,
            t_rollout,
            t0.elapsed().as_secs_f64(),
        );
        let row = stats.row(&cfg.row_extra, &batch.metrics);
        trainer.end_step();
        rows.push(row.clone());
        write_rows(&cfg.metrics_path, &rows)?;
        // 6. Checkpoint, then the journal is spent.
        let s = trainer.step_count();
        if s == cfg.steps || (cfg.save_every > 0 && s.is_multiple_of(cfg.save_every)) {
            trainer.save_checkpoint(&ckpt, files)?;
            let _ = std::fs::remove_file(&journal);
        }
        on_progress(Progress::Step(&row, &stats));
        done.push(row);
    }
    Ok(done)
}

/// The rollout of step `k`: the journaled one (and the RNG after its sampling), or a new
/// one sampled with the current policy and journaled. Also says whether it was resumed.
fn step_rollout(
    trainer: &mut Trainer,
    rollout: &mut dyn Rollout,
    journal: &Path,
    k: u64,
) -> Result<(RolloutBatch, bool)> {
    if let Some(j) = read_journal(journal, k)? {
        trainer.set_rng(j.rng.restore()?);
        return Ok((from_journal(journal, j)?, true));
    }
    let b = {
        let (policy, rng) = trainer.policy_and_rng();
        rollout.rollout(k, policy, rng)?
    };
    let j = to_journal(k, &b, trainer.rng_ref());
    let text = serde_json::to_vec(&j).map_err(|e| Error::invalid(e.to_string()))?;
    fsutil::write_atomic(journal, &text)?;
    Ok((b, false))
}

/// Fills the groups' old (when `need_old`) and reference log-probs, each micro-batch laid
/// out as the mini-batches of `plan` (epoch 0's) lay it out.
fn fill_logprobs(
    trainer: &mut Trainer,
    groups: Vec<Group>,
    plan: &[Vec<usize>],
    need_old: bool,
) -> Result<Vec<Group>> {
    if groups.is_empty() {
        return Ok(groups);
    }
    let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    let mut mbs: Vec<(Vec<usize>, Vec<Group>)> = Vec::new();
    for idx in plan {
        let mut mb: Vec<Group> = idx
            .iter()
            .map(|&i| slots[i].take().unwrap_or_default())
            .collect();
        trainer.fill_rollout_logprobs(&mut mb, need_old)?;
        mbs.push((idx.clone(), mb));
    }
    for (idx, mb) in mbs {
        for (i, g) in idx.into_iter().zip(mb) {
            slots[i] = Some(g);
        }
    }
    Ok(slots.into_iter().map(Option::unwrap_or_default).collect())
}

/// Step `k`'s updates (0-based step): one AdamW update per mini-batch of every epoch's plan; each update's row is appended to
/// `rows` and the rows file rewritten. A non-finite loss is a divergence.
fn run_updates(
    trainer: &mut Trainer,
    k: u64,
    groups: &[Group],
    plans: &[Vec<Vec<usize>>],
    cfg: &LoopConfig,
    rows: &mut Vec<Value>,
    on_progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<StepMetrics>> {
    let mut ups: Vec<StepMetrics> = Vec::new();
    for (e, plan) in plans.iter().enumerate() {
        for idx in plan {
            let u = ups.len();
            let mb: Vec<Group> = idx.iter().map(|&i| groups[i].clone()).collect();
            let m = trainer.update(&mb)?;
            if !m.grad.loss.is_finite() {
                return Err(Error::Diverged(format!(
                    "step {} update {}: loss is {}",
                    k + 1,
                    u + 1,
                    m.grad.loss
                )));
            }
            on_progress(Progress::Update(&m));
            rows.push(update_row(&m, u, e, &cfg.row_extra));
            write_rows(&cfg.metrics_path, rows)?;
            ups.push(m);
        }
    }
    Ok(ups)
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

    #[test]
    fn a_checkpoint_moved_aside_by_a_kill_is_restored_and_leftovers_go() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path();
        std::fs::create_dir_all(w.join(".checkpoint.old-1-2")).unwrap();
        std::fs::write(w.join(".checkpoint.old-1-2/trainer_state.json"), "{}").unwrap();
        std::fs::create_dir_all(w.join(".checkpoint.tmp-1-3")).unwrap();
        std::fs::write(w.join(".rollout.json.tmp-1-4"), "x").unwrap();
        std::fs::write(w.join("rollout.json"), "{}").unwrap();
        clean_work_dir(w).unwrap();
        assert!(w.join("checkpoint/trainer_state.json").is_file());
        let left: Vec<String> = std::fs::read_dir(w)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, vec!["checkpoint", "rollout.json"]);
    }

    #[test]
    fn the_journal_keeps_forced_token_masks() {
        let resp = |ids: Vec<u32>, forced: Vec<bool>| Response {
            ids,
            reward: 0.5,
            forced,
            ..Default::default()
        };
        let b = RolloutBatch {
            groups: vec![Group {
                prompt: vec![1, 2],
                responses: vec![
                    resp(vec![5, 6, 7, 8, 9], vec![false, true, true, false, true]),
                    resp(vec![5, 6], Vec::new()),
                ],
            }],
            metrics: Map::new(),
        };
        let rng = ChaCha8Rng::seed_from_u64(3);
        let text = serde_json::to_string(&to_journal(4, &b, &rng)).unwrap();
        assert!(text.contains(r#""forced":[[0,1,3],[0,4,5]]"#), "{text}");
        let path = Path::new("rollout.json");
        let back = from_journal(path, serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.groups, b.groups);
        // Written again, byte for byte the same; a journal without masks has no key.
        assert_eq!(
            serde_json::to_string(&to_journal(4, &back, &rng)).unwrap(),
            text
        );
        let mut plain = b;
        plain.groups[0].responses[0].forced.clear();
        let t = serde_json::to_string(&to_journal(4, &plain, &rng)).unwrap();
        assert!(!t.contains("forced"));
        // A run outside its response is a bad file.
        let bad = text.replace("[0,4,5]", "[0,4,9]");
        let e = from_journal(path, serde_json::from_str(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("forced run"), "{e}");
    }

    #[test]
    fn minibatches_partition_the_rollout_and_depend_on_step_and_epoch() {
        let p = minibatches(10, 4, 3, 0, 0);
        assert_eq!(p.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = p.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(p, minibatches(10, 4, 3, 0, 0));
        assert_ne!(p, minibatches(10, 4, 3, 1, 0));
        assert_ne!(p, minibatches(10, 4, 3, 0, 1));
        assert_eq!(minibatches(5, 0, 3, 0, 0).len(), 1);
    }
}
