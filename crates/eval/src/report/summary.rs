//! The report's first screen: what happened in each iteration, in plain words, for someone
//! who has never seen R-Zero. One table (rows: the figures that matter, columns: before
//! training and each iteration, each value with its trend against the column before) and one
//! paragraph per iteration. A note says when the model is small (under a billion
//! parameters): such a model is expected to stay near zero on the benchmarks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{audits, bench_table, dataset_stats, fmt_value, iter_of, num, Field, Row, Run};
use crate::error::Result;

/// Below this many parameters the report calls the model small.
const SMALL_MODEL: f64 = 1e9;

/// The values of a field over rows (those that have it).
fn values(rows: &[&Row], field: Field) -> Vec<f64> {
    rows.iter().filter_map(|r| num(field(r))).collect()
}

/// Mean of a field over rows (None when no row has it).
fn mean(rows: &[&Row], field: Field) -> Option<f64> {
    let xs = values(rows, field);
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn first_last(rows: &[&Row], field: Field) -> Option<(f64, f64)> {
    let xs = values(rows, field);
    Some((*xs.first()?, *xs.last()?))
}

/// `↑`, `↓` or `=` (with its CSS class) for a change from `a` to `b`, compared as shown
/// (`shown` formats a value the way the report prints it).
fn trend(
    a: Option<f64>,
    b: Option<f64>,
    shown: fn(f64) -> String,
) -> Option<(&'static str, &'static str)> {
    let (a, b) = (a?, b?);
    Some(if shown(a) == shown(b) {
        ("=", "flat")
    } else if b > a {
        ("↑", "up")
    } else {
        ("↓", "down")
    })
}

/// A figure as printed ("–" when absent), with its trend against the column before.
#[derive(Serialize)]
struct Shown {
    text: String,
    trend: Option<(&'static str, &'static str)>,
}

fn shown(v: Option<f64>, prev: Option<f64>, fmt: fn(f64) -> String) -> Shown {
    Shown {
        text: v.map(fmt).unwrap_or_else(|| "–".into()),
        trend: trend(prev, v, fmt),
    }
}

/// A figure at the first and at the last step, with the trend between them.
type FromTo = Option<(String, String, Option<(&'static str, &'static str)>)>;

fn from_to(fl: Option<(f64, f64)>, fmt: fn(f64) -> String) -> FromTo {
    fl.map(|(a, b)| (fmt(a), fmt(b), trend(Some(a), Some(b), fmt)))
}

fn pct1(x: f64) -> String {
    fmt_value(x, true)
}

fn plain(x: f64) -> String {
    format!("{x:.2}")
}

fn count(x: f64) -> String {
    format!("{x:.0}")
}

/// Parameter count of the first checkpoint in the run (`iter_N/{solver,challenger}/
/// model.safetensors`), read from the safetensors header (the tensor shapes).
fn checkpoint_params(dir: &Path, iters: &[u64]) -> Option<f64> {
    for n in iters {
        for role in ["solver", "challenger"] {
            let p = dir
                .join(format!("iter_{n}"))
                .join(role)
                .join("model.safetensors");
            if let Some(c) = safetensors_params(&p) {
                return Some(c);
            }
        }
    }
    None
}

/// Sum over the tensors of a safetensors file of the product of their shape (header only).
pub(crate) fn safetensors_params(path: &Path) -> Option<f64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    /// A tensor's entry in the header (`__metadata__` reads as one with no shape).
    #[derive(Deserialize)]
    struct Tensor {
        shape: Option<Vec<f64>>,
    }
    let v: std::collections::BTreeMap<String, Tensor> = serde_json::from_slice(&header).ok()?;
    let total: f64 = v
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, t)| t.shape.as_ref())
        .map(|shape| shape.iter().product::<f64>())
        .sum();
    (total > 0.0).then_some(total)
}

/// The top-level `model = "…"` of `config.toml` (no TOML parser needed for one string key).
fn config_model(config: &str) -> Option<String> {
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            return None;
        }
        if let Some(rest) = t.strip_prefix("model") {
            let rest = rest.trim_start();
            if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim().trim_matches('"');
                return Some(v.to_string());
            }
        }
    }
    None
}

/// A size read from a model name: `…-135M…` → 1.35e8, `Qwen3-4B-Base` → 4e9.
fn size_from_name(name: &str) -> Option<f64> {
    let lower = name.to_ascii_lowercase();
    if lower == "smollm2" {
        return Some(135e6);
    }
    let b = lower.as_bytes();
    let mut best = None;
    for (i, &c) in b.iter().enumerate() {
        let unit = match c {
            b'm' => 1e6,
            b'b' => 1e9,
            _ => continue,
        };
        // digits (and one dot) right before the unit, and no letter right after it
        let mut j = i;
        while j > 0 && (b[j - 1].is_ascii_digit() || b[j - 1] == b'.') {
            j -= 1;
        }
        let after_ok = b.get(i + 1).is_none_or(|x| !x.is_ascii_alphabetic());
        let before_ok = j == 0 || !b[j - 1].is_ascii_alphanumeric();
        if j < i && after_ok && before_ok {
            if let Ok(x) = lower[j..i].parse::<f64>() {
                best = Some(x * unit);
            }
        }
    }
    best
}

fn human_params(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0}K", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// The sentence about the model's size: "tiny" below a billion parameters.
fn model_note(run: &Run, dir: &Path) -> String {
    let name = run.config.as_deref().and_then(config_model);
    let iters: Vec<u64> = run.iters.keys().copied().filter(|&n| n > 0).collect();
    let params =
        checkpoint_params(dir, &iters).or_else(|| name.as_deref().and_then(size_from_name));
    let shown_name = match name.as_deref() {
        Some("smollm2") => "SmolLM2-135M-Instruct (the embedded default)".to_string(),
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "the model".to_string(),
    };
    match params {
        Some(p) if p < SMALL_MODEL => format!(
            "This run trains {} with {} parameters. That is a tiny model: the R-Zero paper \
             trains models of 4 to 8 billion parameters, and a model this small is expected to \
             stay near zero on the benchmarks, before and after training. What a short run can \
             show is the loop at work: the Challenger learning the question format, questions \
             kept for the Solver, and Solver steps that change its weights.",
            shown_name,
            human_params(p)
        ),
        Some(p) => format!(
            "This run trains {} with {} parameters.",
            shown_name,
            human_params(p)
        ),
        None => format!("This run trains {}.", shown_name),
    }
}

/// One figure per column: before training (iteration 0) and each iteration.
struct Figures {
    valid: Option<f64>,
    valid_fl: Option<(f64, f64)>,
    c_reward: Option<f64>,
    c_reward_fl: Option<(f64, f64)>,
    c_steps: usize,
    generated: Option<f64>,
    well_formed: Option<f64>,
    kept: Option<f64>,
    s_reward: Option<f64>,
    s_reward_fl: Option<(f64, f64)>,
    s_steps: usize,
    adv: Vec<f64>,
    label_acc: Option<f64>,
    audit_n: Option<f64>,
    bench: Vec<(String, Option<f64>)>,
    bench_n: Option<f64>,
}

fn figures(run: &Run, n: u64, benches: &[(String, String)]) -> Figures {
    let of_iter = |phase| -> Vec<&Row> {
        let rows = run.phase(phase).into_iter();
        rows.filter(|r| iter_of(r) == n).collect()
    };
    let (ch, so) = (of_iter("challenger"), of_iter("solver"));
    let ds = run
        .iters
        .get(&n)
        .map(|it| dataset_stats(run, n, it))
        .unwrap_or_default();
    let audit = audits(run).into_iter().find(|(i, _)| *i == n).map(|x| x.1);
    let (_, table) = bench_table(run, false);
    let bench = benches
        .iter()
        .map(|(key, label)| {
            (
                label.clone(),
                table.get(key).and_then(|m| m.get(&n)).and_then(|(p, _)| *p),
            )
        })
        .collect();
    let bench_n = run
        .iters
        .get(&n)
        .and_then(|it| it.eval.as_ref())
        .and_then(|e| e.benchmarks.first()?.n)
        .or_else(|| {
            run.phase("eval")
                .into_iter()
                .find(|r| iter_of(r) == n)
                .and_then(|r| num(r.n))
        });
    Figures {
        valid: mean(&ch, |r| r.format_valid_frac),
        valid_fl: first_last(&ch, |r| r.format_valid_frac),
        c_reward: mean(&ch, |r| r.reward_mean),
        c_reward_fl: first_last(&ch, |r| r.reward_mean),
        c_steps: ch.len(),
        generated: ds.generated,
        well_formed: ds.valid,
        kept: ds.kept,
        s_reward: mean(&so, |r| r.reward_mean),
        s_reward_fl: first_last(&so, |r| r.reward_mean),
        s_steps: so.len(),
        adv: values(&so, |r| r.adv_nonzero_frac),
        label_acc: audit.as_ref().and_then(|a| num(a.label_accuracy)),
        audit_n: audit.as_ref().and_then(|a| num(a.n)),
        bench,
        bench_n,
    }
}

/// The math benchmarks shown: every benchmark when there are at most three, else the
/// average. (key in the bench table, label).
fn shown_benches(run: &Run) -> Vec<(String, String)> {
    let (order, _) = bench_table(run, false);
    let named: Vec<&String> = order.iter().filter(|o| *o != "average").collect();
    let label = |b: &str| match b {
        "gsm8k" => "GSM8K".to_string(),
        "math500" => "MATH-500".to_string(),
        other => other.to_string(),
    };
    if named.len() <= 3 {
        named.into_iter().map(|b| (b.clone(), label(b))).collect()
    } else {
        vec![("average".into(), "math benchmark average".into())]
    }
}

/// What the paragraph of iteration `n` says (`prev`: the figures of the column before).
fn paragraph(n: u64, f: &Figures, prev: &Figures) -> minijinja::Value {
    let before = if n == 1 {
        "before training".to_string()
    } else {
        format!("after iteration {}", n - 1)
    };
    let mut results = Vec::new();
    if let Some(a) = f.label_acc {
        let pa = prev.label_acc;
        results.push(minijinja::context! {
            value => shown(Some(a), pa, pct1),
            n => f.audit_n.map(count).unwrap_or_else(|| "–".into()),
            before => pa.map(pct1),
        });
    }
    for (k, (label, v)) in f.bench.iter().enumerate() {
        if let Some(v) = v {
            let pv = prev.bench.get(k).and_then(|x| x.1);
            results.push(minijinja::context! {
                bench => label,
                value => shown(Some(*v), pv, pct1),
                n => f.bench_n.map(count).unwrap_or_else(|| "–".into()),
                before => pv.map(pct1),
            });
        }
    }
    minijinja::context! {
        n, before, results,
        c_steps => f.c_steps,
        valid => shown(f.valid, prev.valid, pct1),
        valid_fl => from_to(f.valid_fl, pct1),
        c_reward => shown(f.c_reward, prev.c_reward, plain),
        c_reward_fl => from_to(f.c_reward_fl, plain),
        generated => f.generated.map(count).unwrap_or_else(|| "–".into()),
        well_formed => f.well_formed.map(count).unwrap_or_else(|| "–".into()),
        kept => f.kept.map(|k| shown(Some(k), prev.kept, count)),
        none_kept => f.kept == Some(0.0),
        s_steps => f.s_steps,
        s_reward => shown(f.s_reward, prev.s_reward, plain),
        s_reward_fl => from_to(f.s_reward_fl, plain),
        adv => f.adv.iter().map(|&a| pct1(a)).collect::<Vec<_>>(),
        adv_zero => f.adv.iter().filter(|&&a| a == 0.0).count(),
    }
}

/// One row of the summary table: label, the figure of a column, how it is printed.
type SummaryRow = (
    String,
    Box<dyn Fn(&Figures) -> Option<f64>>,
    fn(f64) -> String,
);

fn summary_row(
    label: &str,
    get: impl Fn(&Figures) -> Option<f64> + 'static,
    shown: fn(f64) -> String,
) -> SummaryRow {
    (label.to_string(), Box::new(get), shown)
}

/// The first section of the report.
pub(super) fn section_summary(run: &Run, dir: &Path) -> Result<String> {
    let model_note = model_note(run, dir);
    let iters: Vec<u64> = run.iters.keys().copied().filter(|&n| n > 0).collect();
    if iters.is_empty() && !run.iters.contains_key(&0) {
        return super::html("summary.html", minijinja::context! { model_note });
    }
    let benches = shown_benches(run);
    let band = super::keep_band(run);
    let base = figures(run, 0, &benches);
    let cols: Vec<(String, Figures)> = std::iter::once(("before training".to_string(), base))
        .chain(
            iters
                .iter()
                .map(|&n| (format!("iteration {n}"), figures(run, n, &benches))),
        )
        .collect();
    // The table: one row per figure, one column per iteration.
    let mut rows: Vec<SummaryRow> = vec![
        summary_row(
            "Challenger: questions in the required format",
            |f| f.valid,
            pct1,
        ),
        summary_row(
            "Challenger: reward (mean over steps)",
            |f| f.c_reward,
            plain,
        ),
        summary_row("questions kept for the Solver", |f| f.kept, count),
        summary_row("Solver: reward (mean over steps)", |f| f.s_reward, plain),
        summary_row(
            "Solver: samples with a non-zero advantage (lowest step)",
            |f| f.adv.iter().copied().reduce(f64::min),
            pct1,
        ),
        summary_row(
            "label accuracy of all audited questions",
            |f| f.label_acc,
            pct1,
        ),
    ];
    for (k, (_, label)) in benches.iter().enumerate() {
        rows.push(summary_row(
            &format!("{label} pass@1"),
            move |f| f.bench.get(k).and_then(|b| b.1),
            pct1,
        ));
    }
    let rows: Vec<_> = rows
        .iter()
        .map(|(label, get, fmt)| {
            let mut prev = None;
            let cells: Vec<Shown> = cols
                .iter()
                .map(|(_, f)| {
                    let v = get(f);
                    let c = shown(v, prev, *fmt);
                    prev = v.or(prev);
                    c
                })
                .collect();
            minijinja::context! { label, cells }
        })
        .collect();
    // One paragraph per iteration.
    let paragraphs: Vec<_> = iters
        .iter()
        .enumerate()
        .map(|(k, &n)| paragraph(n, &cols[k + 1].1, &cols[k].1))
        .collect();
    let ctx = minijinja::context! {
        model_note, rows, paragraphs,
        cols => cols.iter().map(|c| &c.0).collect::<Vec<_>>(),
        band => (band.0.to_string(), band.1.to_string()),
    };
    super::html("summary.html", ctx)
}
