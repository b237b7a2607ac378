//! `run_audit`: how accurate are majority-vote pseudo-labels?
//!
//! Benchmark questions are treated as if the Challenger had written them: the Solver answers
//! each `m` times with the dataset stage's sampling (temperature 1.0, top-k 40, top-p 1.0),
//! the label is the majority answer and p̂ its agreement, exactly as the dataset stage builds
//! them (same extraction, same vote). The labels are then checked against the known answers,
//! overall and per p̂ band: low `p̂ < 0.3`, mid `0.3 ≤ p̂ ≤ 0.8` (the band the filter keeps),
//! high `p̂ > 0.8`. A question with no extracted answer has no label, p̂ = 0, and counts as a
//! wrong label.
//!
//! Output folder: `audit_responses.jsonl` (append-only, resumable; rows
//! `{"bench", "id", "mode": "audit", "question", "gold", "responses", "answers", "label",
//! "p_hat", "label_correct", "kept"}`) and `audit.json` ([`AuditReport`], atomic).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bench::{Benchmark, Item};
use crate::error::{Error, Result};
use crate::generate::{GenParams, Generator, SOLVER_SYSTEM_PROMPT};
use crate::grading::FilterBand;
use crate::run::Progress;
use crate::{grading, io};

/// Options of [`run_audit`]; defaults are the dataset stage's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditOptions {
    /// The model's name or path, recorded in the report.
    pub model: String,
    /// Audit only the first `limit` problems of each benchmark.
    pub limit: Option<usize>,
    /// Samples per question (the method's m = 10).
    pub m: usize,
    /// Sampling temperature (1.0).
    pub temperature: f32,
    /// Top-p (1.0).
    pub top_p: f32,
    /// Top-k (40).
    pub top_k: Option<usize>,
    /// Maximum new tokens per response.
    pub max_new_tokens: usize,
    /// The dataset stage's filter (kept band `low ≤ p̂ ≤ high`, default 0.3 and 0.8, and the
    /// reference's content filter).
    pub filter: FilterBand,
    /// Prompts per `generate` call.
    pub batch_size: usize,
    /// Base sampling seed.
    pub seed: u64,
    /// The generator's forced-answer setting (as JSON; `None` = off), so a resumed audit
    /// must use the same one.
    pub force_answer: Option<String>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            model: String::new(),
            limit: None,
            m: 10,
            temperature: 1.0,
            top_p: 1.0,
            top_k: Some(40),
            max_new_tokens: 2048,
            filter: FilterBand::default(),
            batch_size: 32,
            seed: 0,
            force_answer: None,
        }
    }
}

/// Label accuracy of the questions whose p̂ falls in one band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandStats {
    /// `"0-0.3"`, `"0.3-0.8"` or `"0.8-1"` (with the configured band edges).
    pub band: String,
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Questions in the band.
    pub n: usize,
    /// Of which the label is equivalent to the known answer.
    pub correct: usize,
    /// correct / n (None when n = 0).
    pub accuracy: Option<f64>,
}

/// Per-benchmark summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchAudit {
    /// Benchmark name.
    pub name: String,
    /// Questions audited.
    pub n: usize,
    /// Fraction of correct labels.
    pub label_accuracy: Option<f64>,
    /// Questions the filter keeps.
    pub kept: usize,
    /// Label accuracy among kept questions.
    pub kept_label_accuracy: Option<f64>,
}

/// Contents of `audit.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The model audited.
    pub model: String,
    /// Options used.
    pub options: AuditOptions,
    /// Questions audited.
    pub n: usize,
    /// Questions with a label (some answer extracted).
    pub labeled: usize,
    /// Fraction of all questions whose label is correct.
    pub label_accuracy: Option<f64>,
    /// Questions the filter keeps (label present and p̂ in the band).
    pub kept: usize,
    /// Label accuracy among kept questions: the accuracy of the Solver's training targets.
    pub kept_label_accuracy: Option<f64>,
    /// Mean fraction of correct samples (the Solver's mean@m on these questions).
    pub sample_accuracy: Option<f64>,
    /// Low / mid (kept) / high p̂ bands.
    pub bands: Vec<BandStats>,
    /// Histogram of p̂ in 11 bins: bin k counts questions with round(10·p̂) = k
    /// (exact for m = 10: p̂ = k/10).
    pub p_hat_hist: Vec<usize>,
    /// Per benchmark.
    pub per_bench: Vec<BenchAudit>,
}

/// One audited question (also the journal row).
#[derive(Debug, Clone, PartialEq)]
struct Audited {
    p_hat: f64,
    label_correct: bool,
    kept: bool,
    sample_acc: f64,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Which band (0 low, 1 mid, 2 high) p̂ falls in; the middle band is exactly
/// `FilterBand::contains` (inclusive, no tolerance).
fn band_of(p: f64, band: (f64, f64)) -> usize {
    if p < band.0 {
        0
    } else if p <= band.1 {
        1
    } else {
        2
    }
}

fn fmt_edge(x: f64) -> String {
    format!("{x}")
}

fn audit_one(
    question: &str,
    responses: &[String],
    gold: &str,
    filter: &FilterBand,
) -> (Value, Audited) {
    let answers: Vec<Option<String>> = responses.iter().map(|r| grading::extract(r)).collect();
    let vote = grading::vote(&answers);
    let label_correct = vote
        .label
        .as_deref()
        .is_some_and(|l| grading::equivalent(l, gold));
    let kept = grading::keep(question, &vote, filter);
    let n_ok = answers
        .iter()
        .filter(|a| a.as_deref().is_some_and(|a| grading::equivalent(a, gold)))
        .count();
    let sample_acc = ratio(n_ok, responses.len()).unwrap_or(0.0);
    let v = json!({"answers": answers, "label": vote.label, "p_hat": vote.p_hat,
                   "label_correct": label_correct, "kept": kept});
    (
        v,
        Audited {
            p_hat: vote.p_hat,
            label_correct,
            kept,
            sample_acc,
        },
    )
}

/// Audits pseudo-labels of `gen` on `benches`; resumes from `out_dir/audit_responses.jsonl`
/// and writes `out_dir/audit.json`.
pub fn run_audit(
    gen: &mut dyn Generator,
    benches: &[Benchmark],
    opts: &AuditOptions,
    out_dir: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<AuditReport> {
    check_audit_options(benches, opts)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut identity = json!({"model": opts.model, "m": opts.m, "temperature": opts.temperature, "top_p": opts.top_p,
        "top_k": opts.top_k, "max_new_tokens": opts.max_new_tokens, "seed": opts.seed,
        "system_prompt": SOLVER_SYSTEM_PROMPT});
    if let Some(f) = &opts.force_answer {
        identity["force_answer"] = json!(f);
    }
    io::check_options(&out_dir.join("audit_options.json"), &identity)?;
    let journal_path = out_dir.join("audit_responses.jsonl");
    let old = io::read_journal(&journal_path)?;
    let key = |r: &Value| -> Option<(String, String, String)> {
        Some((
            r.get("bench")?.as_str()?.into(),
            r.get("id")?.as_str()?.into(),
            "audit".into(),
        ))
    };
    let done: HashSet<_> = old.iter().filter_map(key).collect();
    let mut journal = io::Journal::open(&journal_path)?;
    let params = GenParams {
        temperature: opts.temperature,
        top_p: opts.top_p,
        top_k: opts.top_k,
        max_new_tokens: opts.max_new_tokens,
        seed: opts.seed,
    };
    let total: usize = benches.iter().map(|b| b.limited(opts.limit).len()).sum();
    let mut counter = 0;
    for b in benches {
        let filter = opts.filter.clone();
        let name = b.name.clone();
        let row = move |it: &Item, responses: &[String]| -> Value {
            let (mut v, _) = audit_one(&it.question, responses, &it.answer, &filter);
            let o = v.as_object_mut().expect("audit_one returns an object");
            o.insert("bench".into(), json!(name));
            o.insert("id".into(), json!(it.id));
            o.insert("mode".into(), json!("audit"));
            o.insert("question".into(), json!(it.question));
            o.insert("gold".into(), json!(it.answer));
            o.insert("responses".into(), json!(responses));
            v
        };
        crate::run::generate_missing(
            gen,
            &b.name,
            crate::Kind::Math,
            "audit",
            b.limited(opts.limit),
            opts.m,
            &params,
            opts.batch_size,
            &done,
            &mut journal,
            &mut counter,
            total,
            progress,
            &row,
        )?;
    }
    drop(journal);

    let rows = io::read_journal(&journal_path)?;
    let mut by_key: HashMap<(String, String, String), &Value> = HashMap::new();
    for r in &rows {
        if let Some(k) = key(r) {
            by_key.entry(k).or_insert(r);
        }
    }
    let mut all = Vec::new();
    let mut per_bench = Vec::new();
    for b in benches {
        let mut mine = Vec::new();
        for it in b.limited(opts.limit) {
            if let Some(r) = by_key.get(&(b.name.clone(), it.id.clone(), "audit".into())) {
                let responses: Vec<String> = r
                    .get("responses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                mine.push(audit_one(&it.question, &responses, &it.answer, &opts.filter).1);
            }
        }
        let kept: Vec<&Audited> = mine.iter().filter(|a| a.kept).collect();
        per_bench.push(BenchAudit {
            name: b.name.clone(),
            n: mine.len(),
            label_accuracy: ratio(mine.iter().filter(|a| a.label_correct).count(), mine.len()),
            kept: kept.len(),
            kept_label_accuracy: ratio(kept.iter().filter(|a| a.label_correct).count(), kept.len()),
        });
        all.extend(mine);
    }
    let report = summarize(&opts.model, opts, &all, per_bench);
    io::write_json_atomic(&out_dir.join("audit.json"), &report)?;
    Ok(report)
}

/// The options an audit refuses: no samples, a general-domain benchmark, a filter band
/// outside 0 ≤ low ≤ high ≤ 1.
fn check_audit_options(benches: &[Benchmark], opts: &AuditOptions) -> Result<()> {
    if opts.m == 0 {
        return Err(Error::Options(
            "the audit needs m ≥ 1 samples per question".into(),
        ));
    }
    if let Some(b) = benches.iter().find(|b| b.kind.is_general()) {
        return Err(Error::Options(format!(
            "the audit builds math pseudo-labels; `{}` is a general-domain benchmark",
            b.name
        )));
    }
    if !(0.0..=1.0).contains(&opts.filter.low)
        || !(0.0..=1.0).contains(&opts.filter.high)
        || opts.filter.low > opts.filter.high
    {
        return Err(Error::Options(format!(
            "filter band needs 0 ≤ low ≤ high ≤ 1, got {} and {}",
            opts.filter.low, opts.filter.high
        )));
    }
    Ok(())
}

fn summarize(
    model: &str,
    opts: &AuditOptions,
    all: &[Audited],
    per_bench: Vec<BenchAudit>,
) -> AuditReport {
    let band = (opts.filter.low, opts.filter.high);
    let names = [
        format!("0-{}", fmt_edge(band.0)),
        format!("{}-{}", fmt_edge(band.0), fmt_edge(band.1)),
        format!("{}-1", fmt_edge(band.1)),
    ];
    let edges = [(0.0, band.0), band, (band.1, 1.0)];
    let mut bands: Vec<BandStats> = (0..3)
        .map(|i| BandStats {
            band: names[i].clone(),
            lo: edges[i].0,
            hi: edges[i].1,
            n: 0,
            correct: 0,
            accuracy: None,
        })
        .collect();
    let mut hist = vec![0usize; 11];
    for a in all {
        let b = &mut bands[band_of(a.p_hat, band)];
        b.n += 1;
        b.correct += a.label_correct as usize;
        hist[((a.p_hat * 10.0).round().max(0.0) as usize).min(10)] += 1;
    }
    for b in &mut bands {
        b.accuracy = ratio(b.correct, b.n);
    }
    let kept: Vec<&Audited> = all.iter().filter(|a| a.kept).collect();
    AuditReport {
        model: model.to_string(),
        options: opts.clone(),
        n: all.len(),
        labeled: all.iter().filter(|a| a.p_hat > 0.0).count(),
        label_accuracy: ratio(all.iter().filter(|a| a.label_correct).count(), all.len()),
        kept: kept.len(),
        kept_label_accuracy: ratio(kept.iter().filter(|a| a.label_correct).count(), kept.len()),
        sample_accuracy: (!all.is_empty())
            .then(|| all.iter().map(|a| a.sample_acc).sum::<f64>() / all.len() as f64),
        bands,
        p_hat_hist: hist,
        per_bench,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// A plain-text summary of an audit, for the terminal.
pub fn format_audit(r: &AuditReport) -> String {
    let mut s = format!(
        "questions {}  labelled {}  label accuracy {}  kept {}  kept label accuracy {}  sample accuracy (mean@{}) {}\n",
        r.n,
        r.labeled,
        pct(r.label_accuracy),
        r.kept,
        pct(r.kept_label_accuracy),
        r.options.m,
        pct(r.sample_accuracy)
    );
    s.push_str(&format!(
        "{:<12} {:>6} {:>9}\n",
        "p-hat band", "n", "accuracy"
    ));
    for b in &r.bands {
        s.push_str(&format!(
            "{:<12} {:>6} {:>9}\n",
            b.band,
            b.n,
            pct(b.accuracy)
        ));
    }
    s
}
