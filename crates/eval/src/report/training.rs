//! The two training sections (Challenger, Solver) and response lengths: per-step rewards,
//! KL, loss, and per-update clip fractions.

use super::{figure, iter_marks, step_series, Field, Row, Run};
use crate::svg::{line_chart, Axes, Series, PALETTE};

const PER_STEP: &str = "GRPO step (all iterations)";

/// A 420-pixel line chart over `rows` with the iteration markers, in its figure.
fn small_chart(
    id: &str,
    x: &str,
    y: &str,
    rows: &[&Row],
    series: &[Series],
    title: &str,
    cap: &str,
) -> String {
    let mut ax = Axes::new(id, x, y);
    ax.width = 420.0;
    ax.vlines = iter_marks(rows);
    figure(title, &line_chart(&ax, series), cap)
}

/// Per-update charts of a phase: the clip fractions and `ppo_kl` (old vs current policy; 0
/// on the first update of each rollout), and the share of samples with a non-zero advantage
/// per step (`{phase}-clip`, `{phase}-ppo-kl`, `{phase}-adv`).
fn update_charts(phase: &str, run: &Run) -> String {
    let ups = run.updates(phase);
    let steps = run.phase(phase);
    if ups.is_empty() {
        return String::new();
    }
    let per_update = "optimizer update (all iterations)";
    let clip = [
        step_series(
            &ups,
            |r| r.pg_clipfrac_higher,
            "pg_clipfrac (clipped branch)",
            PALETTE[0],
        ),
        step_series(&ups, |r| r.pg_clipfrac_lower, "dual clip", PALETTE[3]),
    ];
    let ppo_kl = [step_series(
        &ups,
        |r| r.ppo_kl,
        "mean old − new log-prob",
        PALETTE[4],
    )];
    let adv = [step_series(
        &steps,
        |r| r.adv_nonzero_frac,
        "adv ≠ 0",
        PALETTE[2],
    )];
    [
        r#"<div class="grid3">"#.to_string(),
        small_chart(
            &format!("{phase}-clip"),
            per_update,
            "share of tokens",
            &ups,
            &clip,
            "PPO clip fraction per update",
            "0 on the first update of a rollout (ratio 1); the clips act on the later ones",
        ),
        small_chart(
            &format!("{phase}-ppo-kl"),
            per_update,
            "ppo_kl",
            &ups,
            &ppo_kl,
            "ppo_kl per update",
            "how far the policy moved since the rollout was sampled",
        ),
        small_chart(
            &format!("{phase}-adv"),
            PER_STEP,
            "share of samples",
            &steps,
            &adv,
            "Samples with a non-zero advantage",
            "a step where this is 0 teaches nothing (all rewards of each group equal)",
        ),
        "</div>".to_string(),
    ]
    .concat()
}

/// A training section: the reward chart (`chart`, of `series`: field, name, colour), KL and
/// loss, and the per-update charts; "not yet" without rows of `phase`.
fn section_training(
    run: &Run,
    phase: &str,
    title: &str,
    chart: (&str, &str, &str),
    series: &[(Field, &str, &str)],
) -> String {
    let rows = run.phase(phase);
    let title = format!("{title} training");
    if rows.is_empty() {
        let missing = format!("no {phase} rows in metrics.jsonl");
        return super::section(phase, &title, Err(&missing));
    }
    let (id, fig_title, caption) = chart;
    let series: Vec<Series> = series
        .iter()
        .map(|&(field, name, color)| step_series(&rows, field, name, color))
        .collect();
    let mut s = String::from(r#"<div class="grid3">"#);
    s.push_str(&small_chart(
        id,
        PER_STEP,
        "mean over the batch",
        &rows,
        &series,
        fig_title,
        caption,
    ));
    // KL to the reference policy and the GRPO loss (`{phase}-kl`, `{phase}-loss`).
    let kl = [step_series(&rows, |r| r.kl, "KL to reference", PALETTE[4])];
    let kl_cap = "low-variance estimator, mean per token";
    s.push_str(&small_chart(
        &format!("{phase}-kl"),
        PER_STEP,
        "kl",
        &rows,
        &kl,
        "KL to reference",
        kl_cap,
    ));
    let loss = [step_series(&rows, |r| r.loss, "loss", PALETTE[5])];
    s.push_str(&small_chart(
        &format!("{phase}-loss"),
        PER_STEP,
        "loss",
        &rows,
        &loss,
        "loss",
        "",
    ));
    s.push_str("</div>");
    s.push_str(&update_charts(phase, run));
    super::section(phase, &title, Ok(s))
}

pub(super) fn section_challenger(run: &Run) -> String {
    section_training(
        run,
        "challenger",
        "Challenger",
        (
            "challenger-rewards",
            "Reward components",
            "reward = r_unc − r_rep; malformed: −1 − r_rep",
        ),
        &[
            (|r| r.reward_mean, "reward", PALETTE[0]),
            (|r| r.r_unc_mean, "uncertainty r_unc", PALETTE[2]),
            (|r| r.r_rep_mean, "repetition r_rep", PALETTE[3]),
            (|r| r.format_valid_frac, "well-formed fraction", PALETTE[7]),
        ],
    )
}

pub(super) fn section_solver(run: &Run) -> String {
    section_training(
        run,
        "solver",
        "Solver",
        (
            "solver-reward",
            "Reward and accuracy vs pseudo-labels",
            "reward = 0.9·accuracy + 0.1·format",
        ),
        &[
            (|r| r.reward_mean, "reward", PALETTE[0]),
            (|r| r.accuracy_mean, "accuracy vs pseudo-label", PALETTE[2]),
            (|r| r.format_mean, "format", PALETTE[7]),
        ],
    )
}

pub(super) fn section_lengths(run: &Run) -> String {
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
