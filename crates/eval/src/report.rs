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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::svg::{bar_chart, esc, fmt_value, line_chart, Axes, BarGroup, Series, PALETTE};

mod summary;

type Row = Map<String, Value>;

/// Everything read from a run directory.
struct Run {
    name: String,
    config: Option<String>,
    state: Option<Value>,
    metrics: Vec<Row>,
    skipped_lines: usize,
    iters: BTreeMap<u64, Iter>,
    problems: Vec<String>,
}

#[derive(Default)]
struct Iter {
    dataset: Option<Vec<Value>>,
    questions: Option<Vec<Value>>,
    eval: Option<Value>,
    audit: Option<Value>,
}

fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn parse_jsonl(text: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => rows.push(v),
            _ => bad += 1,
        }
    }
    (rows, bad)
}

impl Run {
    fn load(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a run directory"),
            ));
        }
        let mut problems = Vec::new();
        let config = read_opt(&dir.join("config.toml"))?;
        let state = match read_opt(&dir.join("state.json"))? {
            Some(s) => match serde_json::from_str(&s) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("state.json is not valid JSON: {e}"));
                    None
                }
            },
            None => None,
        };
        let (metrics, skipped_lines) = match read_opt(&dir.join("metrics.jsonl"))? {
            Some(s) => {
                let (rows, bad) = parse_jsonl(&s);
                (
                    rows.into_iter()
                        .filter_map(|v| v.as_object().cloned())
                        .collect(),
                    bad,
                )
            }
            None => (Vec::new(), 0),
        };
        if skipped_lines > 0 {
            problems.push(format!(
                "{skipped_lines} line(s) of metrics.jsonl could not be read and were skipped"
            ));
        }
        let mut iters: BTreeMap<u64, Iter> = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_prefix("iter_")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if !e.path().is_dir() {
                continue;
            }
            let p = e.path();
            let mut it = Iter::default();
            let mut json_file = |rel: &str| -> Result<Option<Value>> {
                Ok(match read_opt(&p.join(rel))? {
                    Some(s) => match serde_json::from_str(&s) {
                        Ok(v) => Some(v),
                        Err(err) => {
                            problems.push(format!("{name}/{rel} is not valid JSON: {err}"));
                            None
                        }
                    },
                    None => None,
                })
            };
            it.eval = json_file("eval/results.json")?;
            it.audit = match json_file("audit.json")? {
                Some(v) => Some(v),
                None => json_file("eval/audit.json")?,
            };
            it.dataset = read_opt(&p.join("dataset.jsonl"))?.map(|s| parse_jsonl(&s).0);
            it.questions = read_opt(&p.join("questions.jsonl"))?.map(|s| parse_jsonl(&s).0);
            iters.insert(n, it);
        }
        // The base model's evaluation: `base_eval/` (as `rzero run` writes it) counts as
        // iteration 0 unless `iter_0/` already holds it.
        let base = dir.join("base_eval");
        if base.is_dir() {
            let it0 = iters.entry(0).or_default();
            for (slot, rel) in [
                (&mut it0.eval, "results.json"),
                (&mut it0.audit, "audit.json"),
            ] {
                if slot.is_none() {
                    if let Some(text) = read_opt(&base.join(rel))? {
                        match serde_json::from_str(&text) {
                            Ok(v) => *slot = Some(v),
                            Err(err) => {
                                problems.push(format!("base_eval/{rel} is not valid JSON: {err}"))
                            }
                        }
                    }
                }
            }
        }
        for r in &metrics {
            if let Some(n) = r.get("iter").and_then(Value::as_u64) {
                iters.entry(n).or_default();
            }
        }
        let name = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let name = name
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Run {
            name,
            config,
            state,
            metrics,
            skipped_lines,
            iters,
            problems,
        })
    }

    /// Step rows of one phase sorted by (iter, step), in file order otherwise (the rows of
    /// single optimizer updates, which carry `"update"`, are left out).
    fn phase(&self, phase: &str) -> Vec<&Row> {
        let mut v: Vec<&Row> = self
            .metrics
            .iter()
            .filter(|r| r.get("phase").and_then(Value::as_str) == Some(phase))
            .filter(|r| r.get("update").is_none())
            .collect();
        v.sort_by_key(|r| {
            (
                iter_of(r),
                r.get("step").and_then(Value::as_u64).unwrap_or(0),
            )
        });
        v
    }
}

impl Run {
    /// The optimizer-update rows of one phase, sorted by (iter, step, update).
    fn updates(&self, phase: &str) -> Vec<&Row> {
        let mut v: Vec<&Row> = self
            .metrics
            .iter()
            .filter(|r| r.get("phase").and_then(Value::as_str) == Some(phase))
            .filter(|r| r.get("update").is_some())
            .collect();
        let key = |r: &Row, k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        v.sort_by_key(|r| (iter_of(r), key(r, "step"), key(r, "update")));
        v
    }
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

fn iter_of(r: &Row) -> u64 {
    r.get("iter").and_then(Value::as_u64).unwrap_or(0)
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// Step series over a phase's rows: x = global step (1-based, across iterations).
fn step_series(rows: &[&Row], field: &str, name: &str, color: &str) -> Series {
    let points = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| num(r.get(field)).map(|y| ((i + 1) as f64, y)))
        .collect();
    Series {
        name: name.into(),
        color: color.into(),
        points,
        bold: false,
    }
}

/// Dashed markers where a new iteration starts.
fn iter_marks(rows: &[&Row]) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut last = None;
    for (i, r) in rows.iter().enumerate() {
        let it = iter_of(r);
        if last != Some(it) {
            out.push((i as f64 + 0.5, format!("iter {it}")));
            last = Some(it);
        }
    }
    out
}

fn not_yet(what: &str) -> String {
    format!(r#"<p class="not-yet">Not yet: {}.</p>"#, esc(what))
}

fn figure(title: &str, svg: &str, caption: &str) -> String {
    format!(
        r#"<figure class="chart"><figcaption><b>{}</b> {}</figcaption>{svg}</figure>"#,
        esc(title),
        esc(caption)
    )
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// Benchmark pass@1 per iteration: (bench → iter → (pass@1, maj@k)).
type BenchTable = BTreeMap<String, BTreeMap<u64, (Option<f64>, Option<f64>)>>;

/// Whether a benchmark entry (of `results.json` or an eval metrics row) is general-domain:
/// its `kind` is present and not `math`.
fn is_general(v: &Value) -> bool {
    v.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "math")
}

/// The math benchmarks (`general = false`, with `average`) or the general-domain ones
/// (`general = true`, with `general_average` as `average`).
fn bench_table(run: &Run, general: bool) -> (Vec<String>, BenchTable) {
    let mut order: Vec<String> = Vec::new();
    let mut t: BenchTable = BTreeMap::new();
    let mut add = |order: &mut Vec<String>, name: &str, it: u64, p: Option<f64>, m: Option<f64>| {
        if !order.iter().any(|o| o == name) {
            order.push(name.to_string());
        }
        t.entry(name.to_string()).or_default().insert(it, (p, m));
    };
    for (&n, it) in &run.iters {
        if let Some(ev) = &it.eval {
            for b in ev
                .get("benchmarks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|b| is_general(b) == general)
            {
                if let Some(name) = b.get("name").and_then(Value::as_str) {
                    add(
                        &mut order,
                        name,
                        n,
                        num(b.get("pass@1")),
                        num(b.get("maj@k")),
                    );
                }
            }
            if general {
                if let Some(a) = num(ev.get("general_average")) {
                    add(&mut order, "average", n, Some(a), None);
                }
            } else if let Some(a) = ev.get("average") {
                add(
                    &mut order,
                    "average",
                    n,
                    num(a.get("pass@1")),
                    num(a.get("maj@k")),
                );
            }
        } else {
            for r in run
                .phase("eval")
                .into_iter()
                .filter(|r| iter_of(r) == n && is_general(&Value::Object((*r).clone())) == general)
            {
                if let Some(name) = r.get("bench").and_then(Value::as_str) {
                    add(
                        &mut order,
                        name,
                        n,
                        num(r.get("pass@1")),
                        num(r.get("maj@k")),
                    );
                }
            }
        }
    }
    // The average goes last.
    if let Some(i) = order.iter().position(|o| o == "average") {
        let a = order.remove(i);
        order.push(a);
    }
    (order, t)
}

fn section_benchmarks(run: &Run) -> String {
    section_bench_domain(run, false)
}

/// Categories in reporting order, and category → iteration → accuracy.
type CategoryTable = (Vec<String>, BTreeMap<String, BTreeMap<u64, f64>>);

/// The general-domain section (MMLU-Pro, SuperGPQA, BBEH), beside the math one; absent when
/// the run evaluates none of them.
fn section_general(run: &Run) -> String {
    if bench_table(run, true).0.is_empty() {
        return String::new();
    }
    let mut s = section_bench_domain(run, true);
    // Per-category accuracy of each general benchmark, per iteration.
    s.truncate(s.len() - "</section>".len());
    let mut cats: BTreeMap<String, CategoryTable> = BTreeMap::new();
    for (&n, it) in &run.iters {
        let Some(ev) = &it.eval else { continue };
        for b in ev
            .get("benchmarks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|b| is_general(b))
        {
            let Some(name) = b.get("name").and_then(Value::as_str) else {
                continue;
            };
            let entry = cats.entry(name.to_string()).or_default();
            for c in b
                .get("per_category")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(cn), Some(acc)) = (
                    c.get("name").and_then(Value::as_str),
                    num(c.get("accuracy")),
                ) {
                    if !entry.0.iter().any(|o| o == cn) {
                        entry.0.push(cn.to_string());
                    }
                    entry.1.entry(cn.to_string()).or_default().insert(n, acc);
                }
            }
        }
    }
    for (bench, (order, t)) in &cats {
        if order.is_empty() {
            continue;
        }
        let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
        let _ = write!(
            s,
            r#"<h3>{} per category</h3><table data-table="categories-{}"><thead><tr><th>category</th>"#,
            esc(bench),
            esc(bench)
        );
        for i in &iters {
            let _ = write!(
                s,
                "<th>{}</th>",
                if *i == 0 {
                    "base".to_string()
                } else {
                    format!("iter {i}")
                }
            );
        }
        s.push_str("</tr></thead><tbody>");
        for c in order {
            let _ = write!(s, "<tr><td>{}</td>", esc(c));
            for i in &iters {
                let _ = write!(s, "<td>{}</td>", pct(t[c].get(i).copied()));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");
    s
}

fn section_bench_domain(run: &Run, general: bool) -> String {
    let (order, t) = bench_table(run, general);
    let (id, title, chart, what) = if general {
        (
            "general",
            "General-domain accuracy per iteration (MMLU-Pro, SuperGPQA, BBEH)",
            "general-accuracy",
            "general",
        )
    } else {
        (
            "benchmarks",
            "Benchmark accuracy per iteration",
            "benchmark-accuracy",
            "benchmarks",
        )
    };
    let mut s = format!(r#"<section id="{id}"><h2>{title}</h2>"#);
    if order.is_empty() {
        s.push_str(&not_yet(
            "no evaluation results (iter_N/eval/results.json) yet",
        ));
        s.push_str("</section>");
        return s;
    }
    let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
    let mut series = Vec::new();
    let mut ci = 0;
    for name in &order {
        let bold = name == "average";
        let color = if bold {
            "#000000".to_string()
        } else {
            let c = PALETTE[ci % 6].to_string();
            ci += 1;
            c
        };
        let points = t[name]
            .iter()
            .filter_map(|(&i, &(p, _))| p.map(|p| (i as f64, p)))
            .collect();
        series.push(Series {
            name: name.clone(),
            color,
            points,
            bold,
        });
    }
    let mut ax = Axes::new(
        chart,
        "iteration (0 = base model)",
        if general {
            "accuracy (greedy, micro-averaged)"
        } else {
            "pass@1 (greedy)"
        },
    );
    ax.percent = true;
    let maxp = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    ax.y_range = Some((
        0.0,
        if maxp > 0.5 {
            1.0
        } else {
            (maxp * 1.25).max(0.05)
        },
    ));
    ax.width = 760.0;
    ax.height = 300.0;
    s.push_str(r#"<div class="row">"#);
    s.push_str(&figure(
        if general { "accuracy" } else { "pass@1" },
        &line_chart(&ax, &series),
        "per benchmark; the thick black line is the unweighted average",
    ));
    // Table: benchmark × iteration.
    let _ = write!(
        s,
        r#"<table data-table="{what}"><thead><tr><th>benchmark</th>"#
    );
    for i in &iters {
        let _ = write!(
            s,
            "<th>{}</th>",
            if *i == 0 {
                "base".to_string()
            } else {
                format!("iter {i}")
            }
        );
    }
    if iters.len() > 1 {
        s.push_str("<th>Δ</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for name in &order {
        let cls = if name == "average" {
            r#" class="avg""#
        } else {
            ""
        };
        let _ = write!(s, "<tr{cls}><td>{}</td>", esc(name));
        for i in &iters {
            let v = t[name].get(i).and_then(|x| x.0);
            let _ = write!(s, "<td>{}</td>", pct(v));
        }
        if iters.len() > 1 {
            let first = iters.iter().find_map(|i| t[name].get(i).and_then(|x| x.0));
            let last = iters
                .iter()
                .rev()
                .find_map(|i| t[name].get(i).and_then(|x| x.0));
            let d = match (first, last) {
                (Some(a), Some(b)) => {
                    let d = (b - a) * 100.0;
                    let c = if d > 0.05 {
                        "up"
                    } else if d < -0.05 {
                        "down"
                    } else {
                        "flat"
                    };
                    format!(r#"<span class="{c}">{d:+.1}</span>"#)
                }
                _ => "–".into(),
            };
            let _ = write!(s, "<td>{d}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div></section>");
    s
}

/// Audit summaries per iteration: (iter, report-like Value).
fn audits(run: &Run) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for (&n, it) in &run.iters {
        if let Some(a) = &it.audit {
            out.push((n, a.clone()));
        } else if let Some(r) = run
            .phase("audit")
            .into_iter()
            .rev()
            .find(|r| iter_of(r) == n)
        {
            out.push((n, Value::Object(r.clone())));
        }
    }
    out
}

fn section_audit(run: &Run) -> String {
    let mut s = String::from(
        r#"<section id="audit"><h2>Pseudo-label accuracy (audit on benchmarks with known answers)</h2>"#,
    );
    let a = audits(run);
    if a.is_empty() {
        s.push_str(&not_yet("no audit (iter_N/audit.json) yet"));
        s.push_str("</section>");
        return s;
    }
    // Categories: the bands of the first report that has them, then "all" and "kept".
    let band_names: Vec<String> = a
        .iter()
        .find_map(|(_, v)| {
            v.get("bands").and_then(Value::as_array).map(|b| {
                b.iter()
                    .filter_map(|x| x.get("band").and_then(Value::as_str).map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    let mut cats: Vec<String> = band_names.iter().map(|b| format!("p̂ {b}")).collect();
    cats.push("all labels".into());
    cats.push("kept labels".into());
    let groups: Vec<BarGroup> = a
        .iter()
        .enumerate()
        .map(|(gi, (n, v))| {
            let bands = v.get("bands").and_then(Value::as_array);
            let mut values: Vec<Option<f64>> = band_names
                .iter()
                .map(|b| {
                    bands
                        .and_then(|bs| {
                            bs.iter()
                                .find(|x| x.get("band").and_then(Value::as_str) == Some(b))
                        })
                        .and_then(|x| num(x.get("accuracy")))
                })
                .collect();
            values.push(num(v.get("label_accuracy")));
            values.push(num(v.get("kept_label_accuracy")));
            BarGroup {
                name: if *n == 0 {
                    "base Solver".into()
                } else {
                    format!("Solver iter {n}")
                },
                color: PALETTE[gi % PALETTE.len()].into(),
                values,
            }
        })
        .collect();
    let mut ax = Axes::new(
        "label-accuracy",
        "agreement band of the majority vote",
        "label accuracy",
    );
    ax.percent = true;
    ax.y_range = Some((0.0, 1.0));
    ax.width = 760.0;
    ax.height = 300.0;
    s.push_str(r#"<div class="row">"#);
    s.push_str(&figure(
        "Majority-vote labels vs known answers",
        &bar_chart(&ax, &cats, &groups, None, groups.len() <= 3),
        "benchmark questions labelled as the dataset stage labels Challenger questions; the middle band is the one the filter keeps",
    ));
    s.push_str(r#"<table data-table="audit"><thead><tr><th>Solver</th><th>questions</th><th>label acc.</th><th>kept</th><th>kept acc.</th>"#);
    for b in &band_names {
        let _ = write!(s, "<th>p̂ {}</th>", esc(b));
    }
    s.push_str("</tr></thead><tbody>");
    for (n, v) in &a {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if *n == 0 {
                "base".into()
            } else {
                format!("iter {n}")
            },
            v.get("n")
                .and_then(Value::as_u64)
                .map(|x| x.to_string())
                .unwrap_or_else(|| "–".into()),
            pct(num(v.get("label_accuracy"))),
            v.get("kept")
                .and_then(Value::as_u64)
                .map(|x| x.to_string())
                .unwrap_or_else(|| "–".into()),
            pct(num(v.get("kept_label_accuracy")))
        );
        let bands = v.get("bands").and_then(Value::as_array);
        for b in &band_names {
            let x = bands.and_then(|bs| {
                bs.iter()
                    .find(|x| x.get("band").and_then(Value::as_str) == Some(b))
            });
            let cell = match x {
                Some(x) => format!(
                    "{} <small>(n={})</small>",
                    pct(num(x.get("accuracy"))),
                    x.get("n").and_then(Value::as_u64).unwrap_or(0)
                ),
                None => "–".into(),
            };
            let _ = write!(s, "<td>{cell}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div></section>");
    s
}

fn section_challenger(run: &Run) -> String {
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

/// p̂ histogram (11 bins, bin k = round(10·p̂)) and counts of one iteration.
struct DatasetStats {
    hist: Option<Vec<f64>>,
    generated: Option<f64>,
    valid: Option<f64>,
    kept: Option<f64>,
}

fn dataset_stats(run: &Run, n: u64, it: &Iter) -> DatasetStats {
    let row = run
        .phase("dataset")
        .into_iter()
        .rev()
        .find(|r| iter_of(r) == n)
        .cloned();
    let from_row = |k: &str| row.as_ref().and_then(|r| num(r.get(k)));
    let mut st = DatasetStats {
        hist: None,
        generated: from_row("generated"),
        valid: from_row("valid"),
        kept: from_row("kept"),
    };
    if let Some(ds) = &it.dataset {
        let mut h = vec![0.0; 11];
        for d in ds {
            if let Some(p) = num(d.get("p_hat")) {
                h[((p * 10.0).round().max(0.0) as usize).min(10)] += 1.0;
            }
        }
        st.hist = Some(h);
        st.valid = st.valid.or(Some(ds.len() as f64));
        st.kept = st.kept.or(Some(
            ds.iter()
                .filter(|d| d.get("kept").and_then(Value::as_bool) == Some(true))
                .count() as f64,
        ));
    } else if let Some(h) = row
        .as_ref()
        .and_then(|r| r.get("p_hat_hist"))
        .and_then(Value::as_array)
    {
        st.hist = Some(h.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect());
    }
    st
}

fn keep_band(run: &Run) -> (f64, f64) {
    for it in run.iters.values() {
        if let Some(b) = it.audit.as_ref().and_then(|a| a.pointer("/options/filter")) {
            if let (Some(lo), Some(hi)) = (
                b.get("low").and_then(Value::as_f64),
                b.get("high").and_then(Value::as_f64),
            ) {
                return (lo, hi);
            }
        }
    }
    (0.3, 0.8)
}

fn section_dataset(run: &Run) -> String {
    let mut s =
        String::from(r#"<section id="dataset"><h2>Generated questions and the p̂ filter</h2>"#);
    let stats: Vec<(u64, DatasetStats)> = run
        .iters
        .iter()
        .filter(|(n, _)| **n > 0)
        .map(|(n, it)| (*n, dataset_stats(run, *n, it)))
        .filter(|(_, st)| st.hist.is_some() || st.kept.is_some() || st.valid.is_some())
        .collect();
    if stats.is_empty() {
        s.push_str(&not_yet(
            "no dataset (iter_N/dataset.jsonl or dataset rows in metrics.jsonl) yet",
        ));
        s.push_str("</section>");
        return s;
    }
    let cats: Vec<String> = stats.iter().map(|(n, _)| format!("iter {n}")).collect();
    let groups = vec![
        BarGroup {
            name: "generated".into(),
            color: PALETTE[7].into(),
            values: stats.iter().map(|(_, st)| st.generated).collect(),
        },
        BarGroup {
            name: "well-formed".into(),
            color: PALETTE[5].into(),
            values: stats.iter().map(|(_, st)| st.valid).collect(),
        },
        BarGroup {
            name: "kept".into(),
            color: PALETTE[2].into(),
            values: stats.iter().map(|(_, st)| st.kept).collect(),
        },
    ];
    let mut ax = Axes::new("kept-counts", "iteration", "questions");
    ax.width = 420.0;
    s.push_str(r#"<div class="grid3">"#);
    s.push_str(&figure(
        "Questions per iteration",
        &bar_chart(&ax, &cats, &groups, None, true),
        "",
    ));
    let band = keep_band(run);
    let lo_bin = (band.0 * 10.0).round() as usize;
    let hi_bin = ((band.1 * 10.0).round() as usize).min(10);
    let bins: Vec<String> = (0..=10)
        .map(|k| {
            if k % 2 == 0 {
                format!("{:.1}", k as f64 / 10.0)
            } else {
                String::new()
            }
        })
        .collect();
    for (n, st) in &stats {
        let Some(h) = &st.hist else { continue };
        let mut ax = Axes::new(
            &format!("p-hat-hist-iter-{n}"),
            "p̂ (agreement of the Solver's m answers)",
            "questions",
        );
        ax.width = 420.0;
        let g = vec![BarGroup {
            name: format!("iter {n}"),
            color: PALETTE[0].into(),
            values: h.iter().map(|x| Some(*x)).collect(),
        }];
        // A 10-bin `p_hat_hist` row (bin k = [k/10, (k+1)/10), 1.0 in the last bin) when
        // there is no dataset.jsonl to count from.
        let (cats, shade, note) = if h.len() == 10 {
            let c: Vec<String> = (0..10)
                .map(|k| {
                    if k % 2 == 0 {
                        format!("{:.1}", k as f64 / 10.0)
                    } else {
                        String::new()
                    }
                })
                .collect();
            (
                c,
                (lo_bin.min(9), hi_bin.min(9)),
                "bins [k/10, (k+1)/10) from metrics.jsonl",
            )
        } else {
            (bins.clone(), (lo_bin, hi_bin), "")
        };
        s.push_str(&figure(
            &format!("p̂ histogram, iteration {n}"),
            &bar_chart(&ax, &cats, &g, Some((shade.0, shade.1, "kept")), false),
            note,
        ));
    }
    s.push_str("</div></section>");
    s
}

fn section_solver(run: &Run) -> String {
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

fn section_lengths(run: &Run) -> String {
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn answers_summary(answers: &[Value]) -> String {
    let extracted: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let none = answers.len() - extracted.len();
    let mut classes: Vec<(String, usize)> = grade::group_answers(&extracted)
        .into_iter()
        .filter_map(|c| c.first().map(|&f| (extracted[f].clone(), c.len())))
        .collect();
    classes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut parts: Vec<String> = classes
        .iter()
        .take(4)
        .map(|(a, c)| format!("{} ×{c}", truncate(a, 24)))
        .collect();
    if classes.len() > 4 {
        parts.push(format!("+{} more", classes.len() - 4));
    }
    if none > 0 {
        parts.push(format!("none ×{none}"));
    }
    parts.join(" · ")
}

fn section_questions(run: &Run) -> String {
    let mut s = String::from(r#"<section id="questions"><h2>A sample of generated questions</h2>"#);
    let Some((n, it)) = run
        .iters
        .iter()
        .rev()
        .find(|(_, it)| it.dataset.as_ref().is_some_and(|d| !d.is_empty()))
    else {
        s.push_str(&not_yet("no iter_N/dataset.jsonl yet"));
        s.push_str("</section>");
        return s;
    };
    let ds = it.dataset.as_ref().expect("checked above");
    let challenger_answer: BTreeMap<&str, &str> = it
        .questions
        .iter()
        .flatten()
        .filter_map(|q| Some((q.get("question")?.as_str()?, q.get("answer")?.as_str()?)))
        .collect();
    let kept: Vec<&Value> = ds
        .iter()
        .filter(|d| d.get("kept").and_then(Value::as_bool) == Some(true))
        .take(6)
        .collect();
    let dropped: Vec<&Value> = ds
        .iter()
        .filter(|d| d.get("kept").and_then(Value::as_bool) != Some(true))
        .take(4)
        .collect();
    let _ = write!(
        s,
        r#"<p class="note">Iteration {n}: {} kept and {} filtered-out questions of {} (file order). The label is the Solver's majority answer; the Challenger's own answer is shown for comparison.</p>"#,
        kept.len(),
        dropped.len(),
        ds.len()
    );
    s.push_str(r#"<table data-table="questions" class="questions"><thead><tr><th>question</th><th>Challenger's answer</th><th>pseudo-label</th><th>p̂</th><th>Solver's answers</th><th>kept</th></tr></thead><tbody>"#);
    for d in kept.iter().chain(dropped.iter()) {
        let q = d.get("question").and_then(Value::as_str).unwrap_or("");
        let label = d.get("label").and_then(Value::as_str);
        let p = num(d.get("p_hat"));
        let answers = d
            .get("answers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let k = d.get("kept").and_then(Value::as_bool) == Some(true);
        let _ = write!(
            s,
            r#"<tr class="{}"><td class="q">{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class="ans">{}</td><td>{}</td></tr>"#,
            if k { "kept" } else { "dropped" },
            esc(&truncate(q, 360)),
            esc(&truncate(
                challenger_answer.get(q).copied().unwrap_or("–"),
                40
            )),
            esc(&truncate(label.unwrap_or("(none)"), 40)),
            p.map(|p| format!("{p:.2}")).unwrap_or_else(|| "–".into()),
            esc(&answers_summary(&answers)),
            if k { "✓" } else { "✗" }
        );
    }
    s.push_str("</tbody></table></section>");
    s
}

/// `text` (TOML) with every secret-looking value replaced by `"<redacted>"`: the value of a
/// key whose name says key/token/secret/password (but not the name of an environment
/// variable, `*_env`), and any string that looks like a credential (`sk-…`, `hf_…`,
/// `Bearer …`, `ghp_…`, `AKIA…`).
pub fn redact_secrets(text: &str) -> String {
    fn secret_key(k: &str) -> bool {
        let k = k.trim().trim_matches('"').to_ascii_lowercase();
        let words: Vec<&str> = k.split(['_', '-', '.', ' ']).collect();
        words.last() != Some(&"env")
            && words.iter().any(|w| {
                [
                    "key",
                    "apikey",
                    "token",
                    "secret",
                    "password",
                    "passwd",
                    "credentials",
                    "auth",
                ]
                .contains(w)
            })
    }
    fn secret_value(v: &str) -> bool {
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        let long_word = |rest: &str| {
            rest.len() >= 8
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        [
            "sk-",
            "hf_",
            "ghp_",
            "gho_",
            "github_pat_",
            "xox",
            "AKIA",
            "glpat-",
        ]
        .iter()
        .any(|p| v.strip_prefix(p).is_some_and(long_word))
            || v.strip_prefix("Bearer ")
                .is_some_and(|r| !r.trim().is_empty())
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let end = &line[body.len()..];
        if let Some((k, v)) = body.split_once('=') {
            let v_trim = v.trim();
            let string = v_trim.starts_with(['"', '\'']);
            let empty = v_trim == "\"\"" || v_trim == "''";
            if !body.trim_start().starts_with('#')
                && string
                && !empty
                && (secret_key(k) || secret_value(v))
            {
                out.push_str(k);
                out.push_str("= \"<redacted>\"");
                out.push_str(end);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

fn section_config(run: &Run) -> String {
    let mut s = String::from(r#"<section id="config"><h2>Configuration</h2>"#);
    match &run.config {
        Some(c) => {
            let _ = write!(
                s,
                r#"<pre class="config">{}</pre>"#,
                esc(&redact_secrets(c))
            );
        }
        None => s.push_str(&not_yet("no config.toml")),
    }
    s.push_str("</section>");
    s
}

fn header(run: &Run) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<header><h1>rzero run report <span class="run">{}</span></h1>"#,
        esc(&run.name)
    );
    let it = run
        .state
        .as_ref()
        .and_then(|v| v.get("iteration"))
        .map(|v| v.to_string())
        .unwrap_or_else(|| "–".into());
    let stage = run
        .state
        .as_ref()
        .and_then(|v| v.get("stage"))
        .and_then(Value::as_str)
        .unwrap_or("–");
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
            "label accuracy (kept)",
            pct(num(a.get("kept_label_accuracy"))),
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

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;padding:20px 24px;color:#222;background:#fff;font-size:14px}
main{max-width:1560px;margin:0 auto}
h1{font-size:22px;margin:0 0 10px}
h1 .run{font-weight:400;color:#666;font-family:ui-monospace,monospace;font-size:16px;margin-left:8px}
h2{font-size:17px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid #e2e2e2}
h3{font-size:15px;margin:16px 0 6px}
nav{margin:10px 0 0;color:#888}
nav a{color:#0072B2;text-decoration:none}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e2e2e2;border-radius:6px;padding:8px 14px;min-width:120px;background:#fafafa}
.card .k{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#777}
.card .v{font-size:18px;font-weight:600;margin-top:2px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:14px}
figure.chart{margin:0;border:1px solid #ececec;border-radius:6px;padding:8px 10px 4px}
figure.chart figcaption{font-size:13px;color:#555;margin-bottom:2px}
figure.chart figcaption b{color:#222;margin-right:6px}
svg.plot{width:100%;height:auto;max-width:100%;display:block}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .tick{font-size:11px;fill:#555}
svg .axis-label{font-size:12px;fill:#333}
svg .legend{font-size:11.5px;fill:#333}
svg .vlabel{font-size:10.5px;fill:#777}
svg .barlabel{font-size:10.5px;fill:#333}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #eee;padding:4px 9px;text-align:right;vertical-align:top}
th{background:#f5f5f5;font-weight:600}
td:first-child,th:first-child{text-align:left}
tr.avg td{font-weight:600;border-top:2px solid #ccc}
.up{color:#1a7f37}.down{color:#c62828}.flat{color:#777}
table.questions{width:100%}
table.questions td,table.questions th{text-align:left}
table.questions td.q{max-width:640px;white-space:pre-wrap;font-size:12.5px}
table.questions td.ans{font-size:12px;color:#555}
table.questions tr.dropped td{color:#888}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;background:#f4f4f4;padding:1px 4px;border-radius:3px}
pre.config{background:#f7f7f7;border:1px solid #e6e6e6;border-radius:6px;padding:10px 14px;font-size:12px;max-height:560px;overflow:auto}
.not-yet{color:#8a6d00;background:#fff8e1;border:1px solid #f3e3a3;border-radius:6px;padding:8px 12px;display:inline-block}
.note{color:#555;margin:4px 0 8px}
.problems{color:#c62828}
#summary{max-width:1100px}
#summary p.note{font-size:14.5px;line-height:1.45}
ol.summary{padding-left:20px}
ol.summary li{margin:8px 0;line-height:1.5;font-size:14.5px}
#summary-table td:first-child{white-space:nowrap}
"#;

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
