//! What the report reads: the run directory's files, loaded once ([`Run::load`]) into typed
//! views that tolerate older runs (every field optional), and the metric-row accessors the
//! sections share.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A row of `metrics.jsonl`.
pub(super) type Row = crate::rows::MetricRow;

/// Everything read from a run directory.
pub(super) struct Run {
    pub(super) name: String,
    pub(super) config: Option<String>,
    pub(super) state: Option<State>,
    pub(super) metrics: Vec<Row>,
    pub(super) skipped_lines: usize,
    pub(super) iters: BTreeMap<u64, Iter>,
    pub(super) problems: Vec<String>,
}

#[derive(Default)]
pub(super) struct Iter {
    pub(super) dataset: Option<Vec<DatasetLine>>,
    pub(super) questions: Option<Vec<QuestionLine>>,
    pub(super) eval: Option<EvalFile>,
    pub(super) audit: Option<AuditFile>,
}

/// `state.json`: the loop's position.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct State {
    pub(super) iteration: Option<u64>,
    pub(super) stage: Option<String>,
}

/// A line of `iter_N/dataset.jsonl`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DatasetLine {
    pub(super) question: Option<String>,
    pub(super) label: Option<String>,
    pub(super) p_hat: Option<f64>,
    pub(super) answers: Vec<Option<String>>,
    pub(super) kept: Option<bool>,
}

/// A line of `iter_N/questions.jsonl`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct QuestionLine {
    pub(super) question: Option<String>,
    pub(super) answer: Option<String>,
}

/// `results.json` ([`EvalResults`](crate::EvalResults)), the fields the report shows.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct EvalFile {
    pub(super) benchmarks: Vec<BenchEntry>,
    pub(super) average: Option<Scores>,
    pub(super) general_average: Option<f64>,
}

/// pass@1 and maj@k of a benchmark or of the average.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Scores {
    #[serde(rename = "pass@1")]
    pub(super) pass_at_1: Option<f64>,
    #[serde(rename = "maj@k")]
    pub(super) maj_at_k: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct BenchEntry {
    pub(super) name: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) n: Option<f64>,
    #[serde(flatten)]
    pub(super) scores: Scores,
    pub(super) per_category: Vec<Category>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Category {
    pub(super) name: Option<String>,
    pub(super) accuracy: Option<f64>,
}

/// `audit.json` ([`AuditReport`](crate::AuditReport)) or an audit row of `metrics.jsonl`.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct AuditFile {
    pub(super) n: Option<f64>,
    pub(super) label_accuracy: Option<f64>,
    pub(super) kept: Option<f64>,
    pub(super) kept_label_accuracy: Option<f64>,
    pub(super) bands: Option<Vec<Band>>,
    pub(super) options: Option<AuditOptions>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct Band {
    pub(super) band: Option<String>,
    pub(super) accuracy: Option<f64>,
    pub(super) n: Option<u64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct AuditOptions {
    pub(super) filter: Option<KeepBand>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct KeepBand {
    pub(super) low: Option<f64>,
    pub(super) high: Option<f64>,
}

impl From<&Row> for AuditFile {
    fn from(r: &Row) -> Self {
        AuditFile {
            n: r.n,
            label_accuracy: r.label_accuracy,
            kept: r.kept,
            kept_label_accuracy: r.kept_label_accuracy,
            ..AuditFile::default()
        }
    }
}

fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The objects of a JSON-lines text, and how many lines were not one.
fn parse_jsonl<T: DeserializeOwned>(text: &str) -> (Vec<T>, usize) {
    let mut rows = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(line) {
            Ok(v) if line.trim_start().starts_with('{') => rows.push(v),
            _ => bad += 1,
        }
    }
    (rows, bad)
}

/// `dir/rel` parsed as a `T` (None when absent); a problem named `shown/rel` when it is
/// not valid.
fn json_at<T: DeserializeOwned>(
    dir: &Path,
    shown: &str,
    rel: &str,
    problems: &mut Vec<String>,
) -> Result<Option<T>> {
    let text = read_opt(&dir.join(rel))?;
    Ok(text.and_then(|s| parse_json(&s, &format!("{shown}/{rel}"), problems)))
}

/// `text` parsed as a `T`; a problem named after `rel` when it is not.
fn parse_json<T: DeserializeOwned>(text: &str, rel: &str, problems: &mut Vec<String>) -> Option<T> {
    match serde_json::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{rel} is not valid JSON: {e}"));
            None
        }
    }
}

impl Run {
    pub(super) fn load(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a run directory"),
            ));
        }
        let mut problems = Vec::new();
        let config = read_opt(&dir.join("config.toml"))?;
        let state = read_opt(&dir.join("state.json"))?
            .and_then(|s| parse_json(&s, "state.json", &mut problems));
        let (metrics, skipped_lines) = match read_opt(&dir.join("metrics.jsonl"))? {
            Some(s) => parse_jsonl::<Row>(&s),
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
            let eval = json_at(&p, &name, "eval/results.json", &mut problems)?;
            let audit = match json_at(&p, &name, "audit.json", &mut problems)? {
                Some(v) => Some(v),
                None => json_at(&p, &name, "eval/audit.json", &mut problems)?,
            };
            let it = Iter {
                eval,
                audit,
                dataset: read_opt(&p.join("dataset.jsonl"))?.map(|s| parse_jsonl(&s).0),
                questions: read_opt(&p.join("questions.jsonl"))?.map(|s| parse_jsonl(&s).0),
            };
            iters.insert(n, it);
        }
        // The base model's evaluation: `base_eval/` (as `rzero run` writes it) counts as
        // iteration 0 unless `iter_0/` already holds it.
        let base = dir.join("base_eval");
        if base.is_dir() {
            let it0 = iters.entry(0).or_default();
            if it0.eval.is_none() {
                it0.eval = json_at(&base, "base_eval", "results.json", &mut problems)?;
            }
            if it0.audit.is_none() {
                it0.audit = json_at(&base, "base_eval", "audit.json", &mut problems)?;
            }
        }
        for r in &metrics {
            if let Some(n) = r.iter {
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
    pub(super) fn phase(&self, phase: &str) -> Vec<&Row> {
        let mut v: Vec<&Row> = self.rows(phase).filter(|r| r.update.is_none()).collect();
        v.sort_by_key(|r| (iter_of(r), r.step.unwrap_or(0)));
        v
    }

    /// The optimizer-update rows of one phase, sorted by (iter, step, update).
    pub(super) fn updates(&self, phase: &str) -> Vec<&Row> {
        let mut v: Vec<&Row> = self.rows(phase).filter(|r| r.update.is_some()).collect();
        v.sort_by_key(|r| (iter_of(r), r.step.unwrap_or(0), r.update.unwrap_or(0)));
        v
    }

    fn rows<'a>(&'a self, phase: &str) -> impl Iterator<Item = &'a Row> + 'a {
        let phase = phase.to_string();
        self.metrics
            .iter()
            .filter(move |r| r.phase.as_deref() == Some(phase.as_str()))
    }

    /// The last row of a phase in iteration `n`.
    pub(super) fn last_row(&self, phase: &str, n: u64) -> Option<&Row> {
        self.phase(phase)
            .into_iter()
            .rev()
            .find(|r| iter_of(r) == n)
    }
}

pub(super) fn iter_of(r: &Row) -> u64 {
    r.iter.unwrap_or(0)
}

pub(super) fn num(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
