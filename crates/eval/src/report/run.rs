//! What the report reads: the run directory's files, loaded once ([`Run::load`]), and the
//! metric-row accessors the sections share.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub(super) type Row = Map<String, Value>;

/// Everything read from a run directory.
pub(super) struct Run {
    pub(super) name: String,
    pub(super) config: Option<String>,
    pub(super) state: Option<Value>,
    pub(super) metrics: Vec<Row>,
    pub(super) skipped_lines: usize,
    pub(super) iters: BTreeMap<u64, Iter>,
    pub(super) problems: Vec<String>,
}

#[derive(Default)]
pub(super) struct Iter {
    pub(super) dataset: Option<Vec<Value>>,
    pub(super) questions: Option<Vec<Value>>,
    pub(super) eval: Option<Value>,
    pub(super) audit: Option<Value>,
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
    pub(super) fn load(dir: &Path) -> Result<Run> {
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
    pub(super) fn phase(&self, phase: &str) -> Vec<&Row> {
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
    pub(super) fn updates(&self, phase: &str) -> Vec<&Row> {
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

pub(super) fn iter_of(r: &Row) -> u64 {
    r.get("iter").and_then(Value::as_u64).unwrap_or(0)
}

pub(super) fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite())
}
