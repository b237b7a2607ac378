//! The two training sections (Challenger, Solver) and response lengths: per-step rewards,
//! KL, loss, and per-update clip fractions.

use super::{figure, iter_marks, step_series, Field, Row, Run};
use crate::error::Result;
use crate::svg::{line_chart, Axes, Series, PALETTE};

const PER_STEP: &str = "GRPO step (all iterations)";

/// One small chart of a phase: id suffix (`{phase}-{id}`), x label, y label, title, caption,
/// and its lines (field, name, colour).
type Chart<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a [(Field, &'a str, &'a str)],
);

/// 420-pixel line charts over `rows` with the iteration markers, each in its figure.
fn small_charts(phase: &str, rows: &[&Row], charts: &[Chart]) -> String {
    let chart = |&(id, x, y, title, caption, lines): &Chart| {
        let series: Vec<Series> = lines
            .iter()
            .map(|&(field, name, color)| step_series(rows, field, name, color))
            .collect();
        let mut ax = Axes::new(&format!("{phase}-{id}"), x, y);
        ax.width = 420.0;
        ax.vlines = iter_marks(rows);
        figure(title, &line_chart(&ax, &series), caption)
    };
    charts.iter().map(chart).collect()
}

/// Per-update charts of a phase: the clip fractions and `ppo_kl` (old vs current policy; 0
/// on the first update of each rollout), and the share of samples with a non-zero advantage
/// per step (`{phase}-clip`, `{phase}-ppo-kl`, `{phase}-adv`).
fn update_charts(phase: &str, run: &Run) -> String {
    let ups = run.updates(phase);
    if ups.is_empty() {
        return String::new();
    }
    let per_update = "optimizer update (all iterations)";
    let clip: Chart = (
        "clip",
        per_update,
        "share of tokens",
        "PPO clip fraction per update",
        "0 on the first update of a rollout (ratio 1); the clips act on the later ones",
        &[
            (
                |r| r.pg_clipfrac_higher,
                "pg_clipfrac (clipped branch)",
                PALETTE[0],
            ),
            (|r| r.pg_clipfrac_lower, "dual clip", PALETTE[3]),
        ],
    );
    let ppo_kl: Chart = (
        "ppo-kl",
        per_update,
        "ppo_kl",
        "ppo_kl per update",
        "how far the policy moved since the rollout was sampled",
        &[(|r| r.ppo_kl, "mean old − new log-prob", PALETTE[4])],
    );
    let adv: Chart = (
        "adv",
        PER_STEP,
        "share of samples",
        "Samples with a non-zero advantage",
        "a step where this is 0 teaches nothing (all rewards of each group equal)",
        &[(|r| r.adv_nonzero_frac, "adv ≠ 0", PALETTE[2])],
    );
    let steps = run.phase(phase);
    format!(
        r#"<div class="grid3">{}{}</div>"#,
        small_charts(phase, &ups, &[clip, ppo_kl]),
        small_charts(phase, &steps, &[adv])
    )
}

/// A training section: the reward chart, KL and loss per step, and the per-update charts;
/// "not yet" without rows of `phase`.
fn section_training(run: &Run, phase: &str, title: &str, rewards: Chart) -> Result<String> {
    let rows = run.phase(phase);
    let title = format!("{title} training");
    if rows.is_empty() {
        let missing = format!("no {phase} rows in metrics.jsonl");
        return super::section(phase, &title, Err(&missing));
    }
    let kl: Chart = (
        "kl",
        PER_STEP,
        "kl",
        "KL to reference",
        "low-variance estimator, mean per token",
        &[(|r| r.kl, "KL to reference", PALETTE[4])],
    );
    let loss: Chart = (
        "loss",
        PER_STEP,
        "loss",
        "loss",
        "",
        &[(|r| r.loss, "loss", PALETTE[5])],
    );
    let body = format!(
        r#"<div class="grid3">{}</div>{}"#,
        small_charts(phase, &rows, &[rewards, kl, loss]),
        update_charts(phase, run)
    );
    super::section(phase, &title, Ok(body))
}

pub(super) fn section_challenger(run: &Run) -> Result<String> {
    let rewards: Chart = (
        "rewards",
        PER_STEP,
        "mean over the batch",
        "Reward components",
        "reward = r_unc − r_rep; malformed: −1 − r_rep",
        &[
            (|r| r.reward_mean, "reward", PALETTE[0]),
            (|r| r.r_unc_mean, "uncertainty r_unc", PALETTE[2]),
            (|r| r.r_rep_mean, "repetition r_rep", PALETTE[3]),
            (|r| r.format_valid_frac, "well-formed fraction", PALETTE[7]),
        ],
    );
    section_training(run, "challenger", "Challenger", rewards)
}

pub(super) fn section_solver(run: &Run) -> Result<String> {
    let rewards: Chart = (
        "reward",
        PER_STEP,
        "mean over the batch",
        "Reward and accuracy vs pseudo-labels",
        "reward = 0.9·accuracy + 0.1·format",
        &[
            (|r| r.reward_mean, "reward", PALETTE[0]),
            (|r| r.accuracy_mean, "accuracy vs pseudo-label", PALETTE[2]),
            (|r| r.format_mean, "format", PALETTE[7]),
        ],
    );
    section_training(run, "solver", "Solver", rewards)
}

pub(super) fn section_lengths(run: &Run) -> Result<String> {
    let ch = run.phase("challenger");
    let so = run.phase("solver");
    let series = vec![
        step_series(&ch, |r| r.response_len_mean, "Challenger", PALETTE[1]),
        step_series(&so, |r| r.response_len_mean, "Solver", PALETTE[0]),
    ];
    let body = if series.iter().all(|x| x.points.is_empty()) {
        Err("no response_len_mean in challenger or solver rows")
    } else {
        let mut ax = Axes::new(
            "response-lengths",
            "GRPO step within each phase (all iterations)",
            "tokens (mean)",
        );
        ax.width = 760.0;
        Ok(figure(
            "Mean response length",
            &line_chart(&ax, &series),
            "each phase on its own step axis",
        ))
    };
    super::section("lengths", "Response lengths", body)
}
