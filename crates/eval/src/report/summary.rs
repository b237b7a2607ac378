//! The report's first screen: what happened in each iteration, in plain words, for someone
//! who has never seen R-Zero. One table (rows: the figures that matter, columns: before
//! training and each iteration, each value with its trend against the column before) and one
//! paragraph per iteration. A note says when the model is small (under a billion
//! parameters): such a model is expected to stay near zero on the benchmarks.

use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;

use super::{audits, bench_table, dataset_stats, esc, fmt_value, iter_of, num, Field, Row, Run};

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
fn trend(a: f64, b: f64, shown: &dyn Fn(f64) -> String) -> (&'static str, &'static str) {
    if shown(a) == shown(b) {
        ("=", "flat")
    } else if b > a {
        ("↑", "up")
    } else {
        ("↓", "down")
    }
}

fn arrow(a: Option<f64>, b: Option<f64>, shown: &dyn Fn(f64) -> String) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let (sym, class) = trend(a, b, shown);
            format!(r#" <span class="{class}">{sym}</span>"#)
        }
        _ => String::new(),
    }
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
            esc(&shown_name),
            human_params(p)
        ),
        Some(p) => format!(
            "This run trains {} with {} parameters.",
            esc(&shown_name),
            human_params(p)
        ),
        None => format!("This run trains {}.", esc(&shown_name)),
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
    let ch: Vec<&Row> = run
        .phase("challenger")
        .into_iter()
        .filter(|r| iter_of(r) == n)
        .collect();
    let so: Vec<&Row> = run
        .phase("solver")
        .into_iter()
        .filter(|r| iter_of(r) == n)
        .collect();
    let ds = run
        .iters
        .get(&n)
        .map(|it| dataset_stats(run, n, it))
        .unwrap_or(super::DatasetStats {
            hist: None,
            generated: None,
            valid: None,
            kept: None,
        });
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

fn from_to(fl: Option<(f64, f64)>, shown: &dyn Fn(f64) -> String) -> String {
    match fl {
        Some((a, b)) => format!(
            "{} at the first step → {} at the last{}",
            shown(a),
            shown(b),
            arrow(Some(a), Some(b), shown)
        ),
        None => String::new(),
    }
}

/// The paragraph of iteration `n` (`prev`: the figures of the column before).
fn paragraph(n: u64, f: &Figures, prev: Option<&Figures>, band: (f64, f64)) -> String {
    let mut s = format!(r#"<li id="summary-iter-{n}"><b>Iteration {n}.</b> "#);
    let p = |get: &dyn Fn(&Figures) -> Option<f64>| prev.and_then(get);
    let valid = |x: &Figures| x.valid;
    let c_reward = |x: &Figures| x.c_reward;
    let kept = |x: &Figures| x.kept;
    let s_reward = |x: &Figures| x.s_reward;
    // Challenger
    if f.c_steps == 0 {
        s.push_str("The Challenger (the question writer) has not trained yet. ");
    } else {
        let _ = write!(
            s,
            "The Challenger (the question writer) trained for {} GRPO step{}. {} of its samples \
             were questions in the required format{} ({}), and its reward averaged {}{} ({}). ",
            f.c_steps,
            if f.c_steps == 1 { "" } else { "s" },
            f.valid.map(pct1).unwrap_or_else(|| "–".into()),
            arrow(p(&valid), f.valid, &pct1),
            from_to(f.valid_fl, &pct1),
            f.c_reward.map(plain).unwrap_or_else(|| "–".into()),
            arrow(p(&c_reward), f.c_reward, &plain),
            from_to(f.c_reward_fl, &plain),
        );
    }
    // Dataset
    match (f.generated, f.kept) {
        (_, None) => s.push_str("Its questions for the Solver are not written yet. "),
        (g, Some(k)) => {
            let _ = write!(
                s,
                "It then wrote {} questions, {} well-formed; <b>{} kept</b>{} for the Solver \
                 (those whose share p̂ of Solver answers agreeing with the majority lay between \
                 {} and {}). ",
                g.map(count).unwrap_or_else(|| "–".into()),
                f.well_formed.map(count).unwrap_or_else(|| "–".into()),
                count(k),
                arrow(p(&kept), Some(k), &count),
                band.0,
                band.1,
            );
        }
    }
    s.push_str(&solver_sentences(f, p(&s_reward)));
    s.push_str(&results_sentence(n, f, prev));
    s.push_str("</li>");
    s
}

/// What the Solver did in the paragraph of an iteration (`prev_reward`: its reward in the
/// column before).
fn solver_sentences(f: &Figures, prev_reward: Option<f64>) -> String {
    let mut s = String::new();
    if f.kept == Some(0.0) && f.s_steps == 0 {
        s.push_str(
            "No question was kept, so <b>the Solver was not trained</b> in this iteration. ",
        );
    } else if f.s_steps == 0 {
        s.push_str("The Solver (the question answerer) has not trained yet. ");
    } else {
        let _ = write!(
            s,
            "The Solver (the question answerer) trained on them for {} GRPO step{}; its reward \
             (agreement with the majority answers, plus format) averaged {}{} ({}). ",
            f.s_steps,
            if f.s_steps == 1 { "" } else { "s" },
            f.s_reward.map(plain).unwrap_or_else(|| "–".into()),
            arrow(prev_reward, f.s_reward, &plain),
            from_to(f.s_reward_fl, &plain),
        );
        if !f.adv.is_empty() {
            let list: Vec<String> = f.adv.iter().map(|&a| pct1(a)).collect();
            let zero = f.adv.iter().filter(|&&a| a == 0.0).count();
            if zero == 0 {
                let _ = write!(
                    s,
                    "Samples with a non-zero advantage per step: {}; every step had a learning \
                     signal. ",
                    list.join(", ")
                );
            } else {
                let _ = write!(
                    s,
                    "Samples with a non-zero advantage per step: {}; <b>{zero} of {} step{} \
                     taught nothing</b> (all rewards of each group equal). ",
                    list.join(", "),
                    f.adv.len(),
                    if f.adv.len() == 1 { "" } else { "s" },
                );
            }
        }
    }
    s
}

/// The audit and benchmark results of an iteration, against the column before ("before
/// training" for iteration 1); empty when there are none.
fn results_sentence(n: u64, f: &Figures, prev: Option<&Figures>) -> String {
    let before = if n == 1 {
        "before training".to_string()
    } else {
        format!("after iteration {}", n - 1)
    };
    let mut after = Vec::new();
    if let Some(a) = f.label_acc {
        let pa = prev.and_then(|x| x.label_acc);
        after.push(format!(
            "its pseudo-labels (majority answers) were right on {} of {} benchmark questions with \
             known answers{}{}",
            pct1(a),
            f.audit_n.map(count).unwrap_or_else(|| "–".into()),
            arrow(pa, Some(a), &pct1),
            pa.map(|x| format!(" ({} {before})", pct1(x)))
                .unwrap_or_default(),
        ));
    }
    for (k, (label, v)) in f.bench.iter().enumerate() {
        if let Some(v) = v {
            let pv = prev.and_then(|x| x.bench.get(k)).and_then(|x| x.1);
            after.push(format!(
                "it solved {} of {} {label} problems{}{}",
                pct1(*v),
                f.bench_n.map(count).unwrap_or_else(|| "–".into()),
                arrow(pv, Some(*v), &pct1),
                pv.map(|x| format!(" ({} {before})", pct1(x)))
                    .unwrap_or_default(),
            ));
        }
    }
    if after.is_empty() {
        return String::new();
    }
    format!("After this iteration {}.", after.join("; "))
}

fn cell(v: Option<f64>, prev: Option<f64>, shown: &dyn Fn(f64) -> String) -> String {
    match v {
        Some(x) => format!("<td>{}{}</td>", shown(x), arrow(prev, Some(x), shown)),
        None => "<td>–</td>".into(),
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
pub(super) fn section_summary(run: &Run, dir: &Path) -> String {
    let mut s = String::from(
        r#"<section id="summary"><h2>What happened, in plain words</h2><p class="note" id="summary-model">"#,
    );
    s.push_str(&model_note(run, dir));
    s.push_str(
        "</p><p class=\"note\">R-Zero trains one model in two roles. Each iteration, the \
         <b>Challenger</b> is rewarded for writing questions the Solver gets right about half \
         the time; its questions are then answered several times by the <b>Solver</b>, the \
         majority answer becomes the label, and the questions the Solver neither always nor \
         almost never agrees on are kept. The Solver then trains on the kept questions against \
         those labels. ↑ / ↓ / = compare with the column (or iteration) before.</p>",
    );
    let iters: Vec<u64> = run.iters.keys().copied().filter(|&n| n > 0).collect();
    if iters.is_empty() && !run.iters.contains_key(&0) {
        s.push_str(&super::not_yet("no iteration has started"));
        s.push_str("</section>");
        return s;
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
    s.push_str(
        r#"<div class="row"><table id="summary-table" data-table="summary"><thead><tr><th></th>"#,
    );
    for (name, _) in &cols {
        let _ = write!(s, "<th>{}</th>", esc(name));
    }
    s.push_str("</tr></thead><tbody>");
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
        summary_row("label accuracy (audit)", |f| f.label_acc, pct1),
    ];
    for (k, (_, label)) in benches.iter().enumerate() {
        rows.push(summary_row(
            &format!("{label} pass@1"),
            move |f| f.bench.get(k).and_then(|b| b.1),
            pct1,
        ));
    }
    for (label, get, shown) in &rows {
        let _ = write!(s, "<tr><td>{}</td>", esc(label));
        let mut prev = None;
        for (_, f) in &cols {
            let v = get(f);
            s.push_str(&cell(v, prev, shown));
            if v.is_some() {
                prev = v;
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    // One paragraph per iteration.
    s.push_str(r#"<ol class="summary">"#);
    for (k, &n) in iters.iter().enumerate() {
        let f = &cols[k + 1].1;
        let prev = &cols[k].1;
        s.push_str(&paragraph(n, f, Some(prev), band));
    }
    s.push_str("</ol></section>");
    s
}
