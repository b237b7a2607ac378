//! The Challenger phase: GRPO on the Challenger against the frozen Solver.
//!
//! Each step samples `rollout_batch_size × G` Challenger responses to the (constant)
//! Challenger prompt, parses `<question>…</question>` and the last `\boxed{}`, has the
//! frozen Solver answer each well-formed question `m` times, and rewards every response
//! with r_unc − r_rep (format failures: `format_failure_reward` − r_rep), as the reference's
//! `caller_penalty.py` does. The G responses of one prompt form a GRPO group.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::Group;
use crate::rollout::{derive_seed, Role};

/// Builds the GRPO groups of Challenger step `step` (0-based) and the step's metrics.
pub fn make_groups(
    cfg: &Config,
    iter: usize,
    step: usize,
    challenger: &Role<'_>,
    solver: &Role<'_>,
) -> Result<(Vec<Group>, eval::rows::ChallengerRollout)> {
    let c = &cfg.challenger;
    let seed = derive_seed(cfg.seed, &[iter as u64, 1, step as u64]);
    let prompt_text = crate::prompts::challenger_prompt(
        challenger.template,
        c.format_example,
        &c.response_prefix,
    )
    .map_err(|e| Error::Stage(e.to_string()))?;
    let prompt = challenger.encode(&prompt_text)?;
    // 1. Rollouts: G samples for each of the step's prompts.
    let prompts = vec![prompt.clone(); c.rollout_batch_size];
    let samples = challenger.sample(
        &prompts,
        c.group_size,
        &c.sampling,
        derive_seed(seed, &[0]),
        &mut |_, _| {},
    )?;
    let flat: Vec<&crate::rollout::Sample> = samples.iter().flatten().collect();
    // 2. Parse; the Solver answers the well-formed questions m times.
    let items: Vec<Option<(String, String)>> = flat
        .iter()
        .map(|s| {
            reward::challenger::parse_challenger_output(&format!("{}{}", c.response_prefix, s.text))
        })
        .collect();
    let valid: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_some()).collect();
    let questions: Vec<&str> = valid
        .iter()
        .map(|&i| items[i].as_ref().map(|(q, _)| q.as_str()).unwrap_or(""))
        .collect();
    let valid_answers = crate::dataset::solver_answers(
        solver,
        &questions,
        c.solver_samples,
        &c.solver_sampling,
        c.solver_force_answer,
        derive_seed(seed, &[1]),
        cfg,
    )?;
    let mut answers: Vec<Vec<Option<String>>> = vec![Vec::new(); items.len()];
    for (k, &i) in valid.iter().enumerate() {
        answers[i] = valid_answers[k].clone();
    }
    // 3. Rewards over the whole batch (the repetition penalty clusters the batch).
    let rcfg = reward::challenger::ChallengerRewardConfig {
        format_failure_reward: c.format_failure_reward,
        distance_threshold: c.repetition_threshold,
        ..Default::default()
    };
    let rule = match c.vote {
        crate::config::Vote::Reference => reward::vote::VoteRule::ReferenceAllSamples,
        crate::config::Vote::Extracted => reward::vote::VoteRule::Extracted,
    };
    let (rewards, _votes) =
        reward::challenger::challenger_rewards_with_rule(&items, &answers, &rcfg, rule)
            .map_err(|e| Error::Stage(e.to_string()))?;
    // 4. Groups: the G responses of each prompt.
    let g = c.group_size;
    let groups: Vec<Group> = samples
        .iter()
        .enumerate()
        .map(|(p, s)| {
            crate::policy::group(
                prompt.clone(),
                s.iter().map(|x| x.token_ids.clone()).collect(),
                (0..s.len())
                    .map(|j| rewards[p * g + j].total as f32)
                    .collect(),
            )
        })
        .collect();
    let n = rewards.len().max(1) as f64;
    let mean = |f: &dyn Fn(&reward::challenger::ChallengerReward) -> f64| {
        rewards.iter().map(f).sum::<f64>() / n
    };
    let p_hats: Vec<f64> = rewards.iter().filter_map(|r| r.p_hat).collect();
    let metrics = eval::rows::ChallengerRollout {
        reward_mean: mean(&|r| r.total),
        reward_std: std(&rewards.iter().map(|r| r.total).collect::<Vec<_>>()),
        r_unc_mean: mean(&|r| r.uncertainty),
        r_rep_mean: mean(&|r| r.repetition),
        format_valid: valid.len(),
        format_valid_frac: valid.len() as f64 / n,
        p_hat_mean: (!p_hats.is_empty()).then(|| p_hats.iter().sum::<f64>() / p_hats.len() as f64),
        response_len_mean: flat.iter().map(|s| s.token_ids.len()).sum::<usize>() as f64 / n,
        truncated_frac: flat.iter().filter(|s| s.truncated).count() as f64 / n,
        sample_question: valid
            .first()
            .and_then(|&i| items[i].as_ref())
            .map(|(q, _)| q.clone()),
    };
    Ok((groups, metrics))
}

/// Sample standard deviation (Bessel), 0 for fewer than two values.
pub fn std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}
