//! `render(run_dir)`: a self-contained HTML report of a run directory (inline CSS and SVG,
//! no JavaScript, no network). Missing files or rows give sections that say "not yet", so
//! the report can be rendered while a run is going. The first section (`summary`,
//! `report/summary.rs`) says in plain words what happened in each iteration, with trends,
//! and whether the model is tiny.
//!
//! # What the report reads
//!
//! All files are optional. Unknown fields are ignored, missing ones read as absent; a
//! malformed `metrics.jsonl` line (or one with a field of the wrong type) is skipped (a
//! running loop may be writing the last line), a malformed JSON file is reported in the
//! header.
//!
//! - `config.toml`: shown verbatim.
//! - `state.json`: an object; `iteration` (an integer) and `stage` are shown in the header.
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
//! `report/run.rs` reads the run directory into typed views (every field optional); one file
//! per section group computes the section's data: `summary.rs`, `bench.rs` (benchmarks,
//! general domain), `audit.rs`, `training.rs` (Challenger, Solver, lengths), `dataset.rs`
//! (p̂ filter, question sample), `config.rs`. The markup is in `report/templates/` (minijinja;
//! line breaks and indentation dropped), the charts are SVG from `svg.rs` (`charts.rs` holds
//! the figure helpers) and `style.css` the stylesheet.

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
use dataset::{dataset_stats, keep_band, section_dataset, section_questions};
use run::{iter_of, num, AuditFile, Band, DatasetLine, Iter, Row, Run};
use training::{section_challenger, section_lengths, section_solver};

/// The page's templates (`report/templates/`). Line breaks and the indentation after them
/// are dropped (`join_lines`), so the templates can be laid out and the page stays as
/// compact as when it was written from strings.
macro_rules! templates {
    ($($name:literal),*) => { &[$(($name, include_str!(concat!("report/templates/", $name)))),*] };
}
const TEMPLATES: &[(&str, &str)] = templates!(
    "page.html",
    "section.html",
    "summary.html",
    "bench.html",
    "audit.html",
    "questions.html",
    "config.html"
);

fn join_lines(src: &str) -> String {
    src.lines().map(str::trim_start).collect()
}

/// An environment whose templates are `sources` (loaded, hence parsed, when first asked
/// for: a template that does not parse is an error of [`html_in`], not a panic).
fn environment(
    sources: &'static [(&'static str, &'static str)],
) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Text is escaped as `esc` does (what the report always wrote); markup made in Rust
    // (charts) is passed as safe.
    env.set_formatter(|out, _, v| {
        match v.as_str() {
            Some(s) if !v.is_safe() => out.write_str(&esc(s))?,
            _ => write!(out, "{v}")?,
        }
        Ok(())
    });
    env.add_function("not_yet", |what: &str| {
        minijinja::Value::from_safe_string(not_yet(what))
    });
    env.set_loader(move |name| {
        Ok(sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, src)| join_lines(src)))
    });
    env
}

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| environment(TEMPLATES))
}

/// Renders template `name` of `env` with `ctx`; a template that is missing, does not parse
/// or fails to render is [`Error::Template`](crate::Error::Template).
fn html_in(env: &minijinja::Environment, name: &str, ctx: impl serde::Serialize) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| crate::Error::Template {
            name: name.to_string(),
            source,
        })
}

/// Renders the report's template `name` with `ctx`.
fn html(name: &str, ctx: impl serde::Serialize) -> Result<String> {
    html_in(templates(), name, ctx)
}

/// A section of figures made in Rust: `body`, or "not yet" and what is `Err(missing)`.
fn section(id: &str, title: &str, body: std::result::Result<String, &str>) -> Result<String> {
    let (body, missing) = match body {
        Ok(b) => (Some(b), None),
        Err(m) => (None, Some(m)),
    };
    html(
        "section.html",
        minijinja::context! { id, title, body, missing },
    )
}

/// The header's cards: iteration, stage, benchmark average, the last audit's label accuracy
/// of the kept questions (the summary's audit row is over all audited questions), questions
/// kept.
fn cards(run: &Run) -> Vec<(&'static str, String)> {
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
        cards.push((
            "label accuracy of kept questions (audit)",
            pct(num(a.kept_label_accuracy)),
        ));
    }
    let total_kept: f64 = run
        .iters
        .iter()
        .filter_map(|(n, it)| dataset_stats(run, *n, it).kept)
        .sum();
    if total_kept > 0.0 {
        cards.push(("questions kept", format!("{total_kept:.0}")));
    }
    cards
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
    let sections = [
        summary::section_summary(&run, run_dir)?,
        section_benchmarks(&run)?,
        section_general(&run)?,
        section_audit(&run)?,
        section_challenger(&run)?,
        section_dataset(&run)?,
        section_solver(&run)?,
        section_lengths(&run)?,
        section_questions(&run)?,
        section_config(&run)?,
    ];
    let page = minijinja::context! {
        name => run.name,
        css => CSS,
        cards => cards(&run),
        problems => run.problems,
        general => !bench_table(&run, true).0.is_empty(),
        sections => sections,
    };
    Ok(html("page.html", page)? + "\n")
}

/// Renders the report of `run_dir` and writes it to `out` atomically.
pub fn write(run_dir: &Path, out: &Path) -> Result<()> {
    let html = render(run_dir)?;
    Ok(fsutil::write_atomic(out, html.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_that_fails_is_an_error_naming_it() {
        static SOURCES: &[(&str, &str)] = &[
            ("ok.html", "<p>\n  {{ x }}</p>"),
            ("broken.html", "<p>{% if %}</p>"),
            ("fails.html", "<p>{{ no_such_function() }}</p>"),
        ];
        let env = environment(SOURCES);
        let ok = html_in(&env, "ok.html", minijinja::context! { x => "a<b" }).unwrap();
        assert_eq!(ok, "<p>a&lt;b</p>");
        for name in ["broken.html", "fails.html", "missing.html"] {
            match html_in(&env, name, minijinja::context! {}) {
                Err(e @ crate::Error::Template { .. }) => {
                    let text = e.to_string();
                    assert!(
                        text.starts_with(&format!("report template {name}: ")),
                        "{text}"
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        for (name, _) in TEMPLATES {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }
}
