//! `render(run_dir)`: a self-contained HTML report of a run directory (inline CSS and SVG,
//! no JavaScript, no network). Missing files or rows give sections that say "not yet", so
//! the report can be rendered while a run is going. The first section (`summary`,
//! `report/summary.rs`) says in plain words what happened in each iteration, with trends,
//! and whether the model is tiny.
//!
//! # What the report reads
//!
//! All files are optional. Unknown fields are ignored; a malformed `metrics.jsonl` line is
//! skipped (a running loop may be writing the last line), a malformed JSON file is reported
//! in its section.
//!
//! - `config.toml`: shown verbatim.
//! - `state.json`: any object; `iteration` and `stage` are shown in the header.
//! - `metrics.jsonl`: one object per line, with `"iter"` (1-based iteration), `"phase"`, and
//!   `"step"` (GRPO step within the iteration) for per-step phases:
//!   - `phase: "challenger"` (one row per GRPO step): `reward_mean`, `r_unc_mean`,
//!     `r_rep_mean`, `format_valid_frac`, `kl`, `loss`, `response_len_mean` (tokens).
//!   - `phase: "solver"` (one row per GRPO step): `reward_mean`, `accuracy_mean` (agreement
//!     with the pseudo-labels), `format_mean`, `kl`, `loss`, `response_len_mean` (tokens).
//!   - `phase: "dataset"` (one row per iteration): `generated` (questions sampled), `valid`
//!     (well-formed), `kept` (passed the p̂ filter); optional `p_hat_hist` used when
//!     `iter_N/dataset.jsonl` is absent: 10 counts (bin k = [k/10, (k+1)/10), p̂ = 1 in the
//!     last, as `rzero::run::p_hat_histogram` writes it) or 11 (bin k = round(10·p̂)).
//!   - `phase: "eval"` (fallback when `iter_N/eval/results.json` is absent): `bench` (a name,
//!     or `"average"`) and `pass@1` (fraction), optional `mean@k`, `maj@k`, and `kind`
//!     (`mmlu_pro`, `supergpqa`, `bbeh` put the row in the general-domain section).
//!   - `phase: "audit"` (fallback when `iter_N/audit.json` is absent): `n`,
//!     `label_accuracy`, `kept`, `kept_label_accuracy`.
//!
//!   Eval and audit rows use `iter: 0` for the base model (before any training).
//! - `iter_N/dataset.jsonl`: `{"question", "label" (str|null), "p_hat", "answers": [str|null],
//!   "kept"}`: p̂ histogram, counts, and the sample of generated questions.
//! - `iter_N/questions.jsonl`: `{"question", "answer"}`: the Challenger's own answer, shown
//!   next to the pseudo-label in the sample.
//! - `iter_N/eval/results.json`: [`EvalResults`](crate::EvalResults) as written by
//!   [`run_eval`](crate::run_eval), of the Solver after iteration N. The base model's is
//!   `base_eval/results.json` (where `rzero run` evaluates it) or `iter_0/eval/results.json`.
//!   Benchmarks whose `kind` is general-domain (MMLU-Pro, SuperGPQA, BBEH) get their own
//!   section (plot and table per iteration, with `general_average`, and a per-category table
//!   from `per_category`), shown only when such results exist.
//! - `iter_N/audit.json` or `iter_N/eval/audit.json`: [`AuditReport`](crate::AuditReport) as
//!   written by [`run_audit`](crate::run_audit), of the Solver after iteration N; the base
//!   model's is `base_eval/audit.json` or `iter_0/audit.json`.
//!
//! # Where each part is
//!
//! `report/run.rs` reads the run directory; one file per section group: `summary.rs`,
//! `bench.rs` (benchmarks, general domain), `audit.rs`, `training.rs` (Challenger, Solver,
//! lengths), `dataset.rs` (p̂ filter, question sample), `config.rs`; `charts.rs` holds the
//! shared figure helpers and `style.css` the stylesheet.

use std::fmt::Write;
use std::path::Path;

use crate::error::Result;
use crate::svg::{esc, fmt_value};

mod audit;
mod bench;
mod charts;
mod config;
mod dataset;
mod run;
mod summary;
mod training;

use audit::{audits, section_audit};
use bench::{bench_table, section_benchmarks, section_general};
use charts::{figure, iter_marks, not_yet, pct, step_series, Field};
pub use config::redact_secrets;
use config::section_config;
use dataset::{dataset_stats, keep_band, section_dataset, section_questions, DatasetStats};
use run::{iter_of, num, AuditFile, Band, DatasetLine, Iter, Row, Run};
use training::{section_challenger, section_lengths, section_solver};

fn header(run: &Run) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<header><h1>rzero run report <span class="run">{}</span></h1>"#,
        esc(&run.name)
    );
    let state = run.state.as_ref();
    let it = state
        .and_then(|v| v.iteration)
        .map(|v| v.to_string())
        .unwrap_or_else(|| "–".into());
    let stage = state.and_then(|v| v.stage.as_deref()).unwrap_or("–");
    let (order, t) = bench_table(run, false);
    let avg = |first: bool| -> Option<(u64, f64)> {
        let m = t.get("average")?;
        let mut it = m.iter().filter_map(|(i, (p, _))| p.map(|p| (*i, p)));
        if first {
            it.next()
        } else {
            it.next_back()
        }
    };
    let mut cards = vec![("iteration", it), ("stage", stage.to_string())];
    if let (Some((i0, a0)), Some((i1, a1))) = (avg(true), avg(false)) {
        cards.push((
            "benchmark average",
            if i0 == i1 {
                fmt_value(a1, true)
            } else {
                format!("{} → {}", fmt_value(a0, true), fmt_value(a1, true))
            },
        ));
    } else if !order.is_empty() {
        cards.push(("benchmarks", order.len().to_string()));
    }
    if let Some((_, a)) = audits(run).last() {
        cards.push(("label accuracy (kept)", pct(num(a.kept_label_accuracy))));
    }
    let total_kept: f64 = run
        .iters
        .iter()
        .filter_map(|(n, it)| dataset_stats(run, *n, it).kept)
        .sum();
    if total_kept > 0.0 {
        cards.push(("questions kept", format!("{total_kept:.0}")));
    }
    s.push_str(r#"<div class="cards">"#);
    for (k, v) in cards {
        let _ = write!(
            s,
            r#"<div class="card"><div class="k">{}</div><div class="v">{}</div></div>"#,
            esc(k),
            esc(&v)
        );
    }
    s.push_str("</div>");
    if !run.problems.is_empty() {
        s.push_str(r#"<ul class="problems">"#);
        for p in &run.problems {
            let _ = write!(s, "<li>{}</li>", esc(p));
        }
        s.push_str("</ul>");
    }
    let general = if bench_table(run, true).0.is_empty() {
        ""
    } else {
        r##"<a href="#general">general domain</a> · "##
    };
    let _ = write!(
        s,
        r##"<nav><a href="#summary">summary</a> · <a href="#benchmarks">benchmarks</a> · {general}<a href="#audit">label audit</a> · <a href="#challenger">Challenger</a> · <a href="#dataset">dataset</a> · <a href="#solver">Solver</a> · <a href="#lengths">lengths</a> · <a href="#questions">questions</a> · <a href="#config">config</a></nav></header>"##,
    );
    s
}

const CSS: &str = concat!("\n", include_str!("report/style.css"));

/// Renders the report of `run_dir` as one self-contained HTML document (well-formed XML).
pub fn render(run_dir: &Path) -> Result<String> {
    let run = Run::load(run_dir)?;
    tracing::debug!(
        iterations = run.iters.len(),
        metrics = run.metrics.len(),
        skipped = run.skipped_lines,
        "report data loaded"
    );
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>rzero report: {}</title><style>{CSS}</style></head><body><main>"#,
        esc(&run.name)
    );
    s.push_str(&header(&run));
    s.push_str(&summary::section_summary(&run, run_dir));
    s.push_str(&section_benchmarks(&run));
    s.push_str(&section_general(&run));
    s.push_str(&section_audit(&run));
    s.push_str(&section_challenger(&run));
    s.push_str(&section_dataset(&run));
    s.push_str(&section_solver(&run));
    s.push_str(&section_lengths(&run));
    s.push_str(&section_questions(&run));
    s.push_str(&section_config(&run));
    s.push_str("<footer><p class=\"note\">Generated by <code>rzero report</code>. Self-contained: no scripts, no network.</p></footer></main></body></html>\n");
    Ok(s)
}

/// Renders the report of `run_dir` and writes it to `out` atomically.
pub fn write(run_dir: &Path, out: &Path) -> Result<()> {
    let html = render(run_dir)?;
    crate::io::write_atomic(out, html.as_bytes())
}
