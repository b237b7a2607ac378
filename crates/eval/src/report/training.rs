//! The two training sections (Challenger, Solver) and response lengths: per-step rewards,
//! KL, loss, and per-update clip fractions.

use super::{figure, iter_marks, not_yet, step_series, Row, Run};
use crate::svg::{line_chart, Axes, Series, PALETTE};

/// Per-update charts of a phase: the clip fractions and `ppo_kl` (old vs current policy; 0
/// on the first update of each rollout), and the share of samples with a non-zero advantage
/// per step (`{phase}-clip`, `{phase}-ppo-kl`, `{phase}-adv`).
fn update_charts(phase: &str, run: &Run) -> String {
    let ups = run.updates(phase);
    let steps = run.phase(phase);
    if ups.is_empty() {
        return String::new();
    }
    // One small chart: (id suffix, x label, y label, rows, series, title, caption).
    let chart =
        |id: &str, x: &str, y: &str, rows: &[&Row], series: &[Series], title: &str, cap: &str| {
            let mut ax = Axes::new(&format!("{phase}-{id}"), x, y);
            ax.width = 420.0;
            ax.vlines = iter_marks(rows);
            figure(title, &line_chart(&ax, series), cap)
        };
    let per_update = "optimizer update (all iterations)";
    let mut out = String::from(r#"<div class="grid3">"#);
    out.push_str(&chart(
        "clip",
        per_update,
        "share of tokens",
        &ups,
        &[
            step_series(
                &ups,
                "pg_clipfrac_higher",
                "pg_clipfrac (clipped branch)",
                PALETTE[0],
            ),
            step_series(&ups, "pg_clipfrac_lower", "dual clip", PALETTE[3]),
        ],
        "PPO clip fraction per update",
        "0 on the first update of a rollout (ratio 1); the clips act on the later ones",
    ));
    out.push_str(&chart(
        "ppo-kl",
        per_update,
        "ppo_kl",
        &ups,
        &[step_series(
            &ups,
            "ppo_kl",
            "mean old − new log-prob",
            PALETTE[4],
        )],
        "ppo_kl per update",
        "how far the policy moved since the rollout was sampled",
    ));
    out.push_str(&chart(
        "adv",
        "GRPO step (all iterations)",
        "share of samples",
        &steps,
        &[step_series(
            &steps,
            "adv_nonzero_frac",
            "adv ≠ 0",
            PALETTE[2],
        )],
        "Samples with a non-zero advantage",
        "a step where this is 0 teaches nothing (all rewards of each group equal)",
    ));
    out.push_str("</div>");
    out
}

pub(super) fn section_challenger(run: &Run) -> String {
    let rows = run.phase("challenger");
    let mut s = String::from(r#"<section id="challenger"><h2>Challenger training</h2>"#);
    if rows.is_empty() {
        s.push_str(&not_yet("no challenger rows in metrics.jsonl"));
        s.push_str("</section>");
        return s;
    }
    let mut ax = Axes::new(
        "challenger-rewards",
        "GRPO step (all iterations)",
        "mean over the batch",
    );
    ax.width = 420.0;
    ax.vlines = iter_marks(&rows);
    let series = vec![
        step_series(&rows, "reward_mean", "reward", PALETTE[0]),
        step_series(&rows, "r_unc_mean", "uncertainty r_unc", PALETTE[2]),
        step_series(&rows, "r_rep_mean", "repetition r_rep", PALETTE[3]),
        step_series(
            &rows,
            "format_valid_frac",
            "well-formed fraction",
            PALETTE[7],
        ),
    ];
    s.push_str(r#"<div class="grid3">"#);
    s.push_str(&figure(
        "Reward components",
        &line_chart(&ax, &series),
        "reward = r_unc − r_rep; malformed: −1 − r_rep",
    ));
    s.push_str(&kl_and_loss("challenger", &rows));
    s.push_str("</div>");
    s.push_str(&update_charts("challenger", run));
    s.push_str("</section>");
    s
}

/// Two small charts: KL to the reference policy and the GRPO loss (`{phase}-kl`, `{phase}-loss`).
fn kl_and_loss(phase: &str, rows: &[&Row]) -> String {
    let mut out = String::new();
    for (field, title, color) in [
        ("kl", "KL to reference", PALETTE[4]),
        ("loss", "loss", PALETTE[5]),
    ] {
        let mut ax = Axes::new(
            &format!("{phase}-{field}"),
            "GRPO step (all iterations)",
            field,
        );
        ax.vlines = iter_marks(rows);
        ax.width = 420.0;
        let series = vec![step_series(rows, field, title, color)];
        out.push_str(&figure(
            title,
            &line_chart(&ax, &series),
            if field == "kl" {
                "low-variance estimator, mean per token"
            } else {
                ""
            },
        ));
    }
    out
}

pub(super) fn section_solver(run: &Run) -> String {
    let rows = run.phase("solver");
    let mut s = String::from(r#"<section id="solver"><h2>Solver training</h2>"#);
    if rows.is_empty() {
        s.push_str(&not_yet("no solver rows in metrics.jsonl"));
        s.push_str("</section>");
        return s;
    }
    let mut ax = Axes::new(
        "solver-reward",
        "GRPO step (all iterations)",
        "mean over the batch",
    );
    ax.width = 420.0;
    ax.vlines = iter_marks(&rows);
    let series = vec![
        step_series(&rows, "reward_mean", "reward", PALETTE[0]),
        step_series(
            &rows,
            "accuracy_mean",
            "accuracy vs pseudo-label",
            PALETTE[2],
        ),
        step_series(&rows, "format_mean", "format", PALETTE[7]),
    ];
    s.push_str(r#"<div class="grid3">"#);
    s.push_str(&figure(
        "Reward and accuracy vs pseudo-labels",
        &line_chart(&ax, &series),
        "reward = 0.9·accuracy + 0.1·format",
    ));
    s.push_str(&kl_and_loss("solver", &rows));
    s.push_str("</div>");
    s.push_str(&update_charts("solver", run));
    s.push_str("</section>");
    s
}

pub(super) fn section_lengths(run: &Run) -> String {
    let ch = run.phase("challenger");
    let so = run.phase("solver");
    let mut s = String::from(r#"<section id="lengths"><h2>Response lengths</h2>"#);
    let series = vec![
        step_series(&ch, "response_len_mean", "Challenger", PALETTE[1]),
        step_series(&so, "response_len_mean", "Solver", PALETTE[0]),
    ];
    if series.iter().all(|x| x.points.is_empty()) {
        s.push_str(&not_yet(
            "no response_len_mean in challenger or solver rows",
        ));
        s.push_str("</section>");
        return s;
    }
    let mut ax = Axes::new(
        "response-lengths",
        "GRPO step within each phase (all iterations)",
        "tokens (mean)",
    );
    ax.width = 760.0;
    s.push_str(&figure(
        "Mean response length",
        &line_chart(&ax, &series),
        "each phase on its own step axis",
    ));
    s.push_str("</section>");
    s
}
