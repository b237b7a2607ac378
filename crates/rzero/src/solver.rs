//! The Solver phase: GRPO on the kept questions against their pseudo-labels.
//!
//! Step `k` takes the next `rollout_batch_size` questions of a seeded permutation of the kept
//! dataset (cycling when the steps outrun it), samples G responses from the current Solver,
//! and rewards each with `accuracy_weight · [answer ≡ label] + format_weight · format`
//! (the reference's `math.py`). With `solver.force_answer` a response without a closed box
//! gets a forced final answer (`engine::force`); its cue tokens are masked out of the loss.

use crate::config::Config;
use crate::dataset::DatasetItem;
use crate::error::{Error, Result};
use crate::policy::Group;
use crate::rollout::{derive_seed, Role};

/// The questions of step `step`: a seeded permutation of `kept`, taken in windows.
pub fn step_items<'a>(
    cfg: &Config,
    iter: usize,
    step: usize,
    kept: &'a [&'a DatasetItem],
) -> Vec<&'a DatasetItem> {
    let n = kept.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Fisher-Yates with a splitmix stream: stable across platforms and crate versions.
    let mut s = derive_seed(cfg.seed, &[iter as u64, 3, 0]);
    for i in (1..n).rev() {
        s = derive_seed(s, &[i as u64]);
        let j = (s % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let p = cfg.solver.rollout_batch_size;
    (0..p.min(n))
        .map(|k| kept[order[(step * p + k) % n]])
        .collect()
}

/// Builds the GRPO groups of Solver step `step` (0-based) and the step's metrics.
pub fn make_groups(
    cfg: &Config,
    iter: usize,
    step: usize,
    kept: &[&DatasetItem],
    solver: &Role<'_>,
) -> Result<(Vec<Group>, eval::rows::SolverRollout)> {
    let s = &cfg.solver;
    let items = step_items(cfg, iter, step, kept);
    let prompts = items
        .iter()
        .map(|it| {
            let text =
                crate::prompts::solver_prompt(solver.template, &it.question, s.format_example)
                    .map_err(|e| Error::Stage(e.to_string()))?;
            solver.encode(&text)
        })
        .collect::<Result<Vec<_>>>()?;
    let seed = derive_seed(cfg.seed, &[iter as u64, 4, step as u64]);
    let force = cfg.force_answer(s.force_answer);
    let samples = solver.sample_with(
        &prompts,
        s.group_size,
        &s.sampling,
        force.as_ref(),
        seed,
        &mut |_, _| {},
    )?;
    let rcfg = reward::solver::SolverRewardConfig {
        accuracy_weight: s.accuracy_weight,
        format_weight: s.format_weight,
    };
    let mut groups = Vec::new();
    let (mut total, mut acc, mut fmt, mut len, mut count) = (0.0, 0.0, 0.0, 0usize, 0usize);
    let mut forced = 0usize;
    let mut all = Vec::new();
    for ((item, prompt), group) in items.iter().zip(prompts).zip(samples) {
        let label = item.label.as_deref().unwrap_or("");
        let rewards: Vec<reward::solver::SolverReward> = group
            .iter()
            .map(|r| rcfg.reward_with(&r.text, label, |t| cfg.extract_answer(t), grade::equivalent))
            .collect();
        for r in &rewards {
            total += r.total;
            acc += r.accuracy;
            fmt += r.format;
            all.push(r.total);
        }
        len += group.iter().map(|r| r.token_ids.len()).sum::<usize>();
        forced += group.iter().filter(|r| r.forced.contains(&true)).count();
        count += group.len();
        groups.push(crate::policy::group_masked(
            prompt,
            group.iter().map(|r| r.token_ids.clone()).collect(),
            group.iter().map(|r| r.forced.clone()).collect(),
            rewards.iter().map(|r| r.total as f32).collect(),
        ));
    }
    let n = count.max(1) as f64;
    let metrics = eval::rows::SolverRollout {
        reward_mean: total / n,
        reward_std: crate::challenger::std(&all),
        accuracy_mean: acc / n,
        format_mean: fmt / n,
        response_len_mean: len as f64 / n,
        forced_frac: forced as f64 / n,
        questions: items.len(),
    };
    Ok((groups, metrics))
}
