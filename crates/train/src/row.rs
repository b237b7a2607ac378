//! The metric rows of the GRPO loop ([`crate::driver::run`]): one row per optimizer update
//! (`"update": u`) and one per step ([`StepStats`], with the rollout's own metrics and the
//! caller's fields). Rows are JSON objects written one per line; their keys come out sorted
//! (a `serde_json::Map`), so a row's bytes depend only on its values.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::trainer::{Response, StepMetrics};
use crate::{Error, Result};

/// What the loop computes for a step, from its rollout and its updates. The step's row
/// holds these fields, the rollout's metrics and the caller's extra fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Step (1-based).
    pub step: u64,
    /// Mean reward over the rollout's responses (a rollout that reports its own
    /// `reward_mean` metric keeps it in the row).
    pub reward_mean: f64,
    /// Fraction of responses in a group whose rewards differ (a non-zero advantage).
    pub adv_nonzero_frac: f64,
    /// Optimizer updates run.
    pub updates: usize,
    /// Groups (prompts) in the rollout.
    pub groups: usize,
    /// Means over the updates of their statistics (absent: no finite value).
    #[serde(flatten)]
    pub means: UpdateMeans,
    /// Largest resident set seen in the step's updates, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    /// Largest peak resident set, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_peak_bytes: Option<u64>,
    /// Largest device memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_device_bytes: Option<u64>,
    /// The device's memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_device_total_bytes: Option<u64>,
    /// Smallest importance ratio of the updates (absent when not finite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_min: Option<f64>,
    /// Largest importance ratio of the updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_max: Option<f64>,
    /// Mean response length, tokens.
    pub response_len_mean: f64,
    /// Tokens trained on.
    pub tokens: usize,
    /// `tokens` / the updates' time.
    pub tokens_per_s: f64,
    /// Time to sample (or load) the rollout, seconds.
    pub rollout_seconds: f64,
    /// Time of the whole step, seconds.
    pub seconds: f64,
}

/// Update statistics averaged into the step's row (`None`: no update had a finite value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateMeans {
    /// Total loss (`GradStats::loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Policy-gradient loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_loss: Option<f64>,
    /// KL to the reference policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Fraction clipped at 1 + ε_high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_clipfrac_higher: Option<f64>,
    /// Fraction clipped at 1 − ε_low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_clipfrac_lower: Option<f64>,
    /// Fraction of ratios above the clip range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipfrac_ratio_upper: Option<f64>,
    /// Fraction of ratios below the clip range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipfrac_ratio_lower: Option<f64>,
    /// Approximate KL between the old and the current policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppo_kl: Option<f64>,
    /// Token entropy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    /// Gradient norm before clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Gradient clip factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_coef: Option<f64>,
}

/// The mean of the finite values (a JSON row holds a non-finite number as `null`, which
/// the mean skips); None when there is none.
fn finite_mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl UpdateMeans {
    /// The means over `ups`.
    pub fn of(ups: &[StepMetrics]) -> Self {
        let m = |f: fn(&StepMetrics) -> f64| finite_mean(ups.iter().map(f));
        Self {
            loss: m(|u| u.grad.loss),
            pg_loss: m(|u| u.grad.pg_loss),
            kl: m(|u| u.grad.kl),
            pg_clipfrac_higher: m(|u| u.grad.pg_clipfrac_higher),
            pg_clipfrac_lower: m(|u| u.grad.pg_clipfrac_lower),
            clipfrac_ratio_upper: m(|u| u.grad.clipfrac_ratio_upper),
            clipfrac_ratio_lower: m(|u| u.grad.clipfrac_ratio_lower),
            ppo_kl: m(|u| u.grad.ppo_kl),
            entropy: m(|u| u.grad.entropy),
            grad_norm: m(|u| u.update.grad_norm),
            clip_coef: m(|u| u.update.clip_coef),
        }
    }
}

impl StepStats {
    /// The statistics of step `step` (1-based) from its groups' responses and its updates.
    pub fn of(
        step: u64,
        responses: &[Vec<Response>],
        ups: &[StepMetrics],
        rollout_seconds: f64,
        seconds: f64,
    ) -> Self {
        let all: Vec<&Response> = responses.iter().flatten().collect();
        let nresp = all.len().max(1) as f64;
        let adv_nonzero = responses
            .iter()
            .map(|g| {
                let first = g.first().map(|r| r.reward);
                if g.len() > 1 && g.iter().any(|r| Some(r.reward) != first) {
                    g.len()
                } else {
                    0
                }
            })
            .sum::<usize>() as f64
            / nresp;
        let ratio_min = ups
            .iter()
            .map(|m| m.grad.ratio_min)
            .fold(f64::INFINITY, f64::min);
        let ratio_max = ups
            .iter()
            .map(|m| m.grad.ratio_max)
            .fold(f64::NEG_INFINITY, f64::max);
        let ratios = ratio_min.is_finite() && ratio_max.is_finite();
        let tokens: usize = ups.iter().map(|m| m.grad.tokens).sum();
        let t_train: f64 = ups.iter().map(|m| m.time_s).sum();
        let len: usize = all.iter().map(|r| r.ids.len()).sum();
        Self {
            step,
            reward_mean: all.iter().map(|r| r.reward as f64).sum::<f64>() / nresp,
            adv_nonzero_frac: adv_nonzero,
            updates: ups.len(),
            groups: responses.len(),
            means: UpdateMeans::of(ups),
            mem_rss_bytes: ups.iter().filter_map(|m| m.mem_rss_bytes).max(),
            mem_rss_peak_bytes: ups.iter().filter_map(|m| m.mem_rss_peak_bytes).max(),
            mem_device_bytes: ups.iter().filter_map(|m| m.mem_device_bytes).max(),
            mem_device_total_bytes: ups.iter().filter_map(|m| m.mem_device_total_bytes).max(),
            ratio_min: ratios.then_some(ratio_min),
            ratio_max: ratios.then_some(ratio_max),
            response_len_mean: len as f64 / nresp,
            tokens,
            tokens_per_s: tokens as f64 / t_train.max(1e-9),
            rollout_seconds,
            seconds,
        }
    }

    /// The step's row: the caller's `extra` fields, the rollout's `metrics`, then these
    /// statistics (the rollout's own `reward_mean`, when it has one, is kept).
    pub fn row(&self, extra: &Map<String, Value>, metrics: &Map<String, Value>) -> Value {
        let mut row = extra.clone();
        row.insert("step".into(), self.step.into());
        for (key, v) in metrics {
            row.insert(key.clone(), v.clone());
        }
        for (key, v) in obj(serde_json::to_value(self).unwrap_or(Value::Null)) {
            if key == "reward_mean" {
                row.entry(key).or_insert(v);
            } else {
                row.insert(key, v);
            }
        }
        Value::Object(row)
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The metric row of update `u` (0-based) of `epoch` (0-based).
pub fn update_row(m: &StepMetrics, u: usize, epoch: usize, extra: &Map<String, Value>) -> Value {
    let mut row = extra.clone();
    row.insert("step".into(), m.step.into());
    row.insert("update".into(), (u + 1).into());
    row.insert("epoch".into(), (epoch + 1).into());
    for (k, v) in obj(serde_json::to_value(m).unwrap_or(Value::Null)) {
        if k != "step" {
            row.insert(k, v);
        }
    }
    Value::Object(row)
}

/// The rows of `path` that belong to steps `<= upto`.
pub fn read_rows(path: &Path, upto: u64) -> Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut keep = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            msg: format!("line {}: {e}", i + 1),
        })?;
        if v["step"].as_u64().is_some_and(|s| s <= upto) {
            keep.push(v);
        }
    }
    Ok(keep)
}

/// Rewrites the rows file atomically.
pub fn write_rows(path: &Path, rows: &[Value]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r).map_err(|e| Error::invalid(e.to_string()))?);
        text.push('\n');
    }
    fsutil::write_atomic(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A resumed loop reads its rows back ([`read_rows`]) and writes them again with the
    /// new ones: every float must come back as the f64 that was written, or the resumed
    /// run's file drifts from an uninterrupted run's by an ulp per read-write cycle (serde_json
    /// without `float_roundtrip` read `1.8870880944326507e-7` as `1.887088094432651e-7`).
    #[test]
    fn rows_read_back_are_the_floats_written_and_rewrite_byte_identical() {
        // two values seen to drift in killed-and-resumed runs, then doubles of all exponents
        let mut xs = vec![1.8870880944326507e-7, 1.490116141589226e-9, -0.0, 5e-324];
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        while xs.len() < 20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = f64::from_bits(s);
            if x.is_finite() {
                xs.push(x);
            }
        }
        let rows: Vec<Value> = xs
            .chunks(8)
            .enumerate()
            .map(|(i, c)| json!({"step": 1 + i % 2, "update": i, "v": c}))
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("metrics.jsonl");
        write_rows(&p, &rows).unwrap();
        let first = std::fs::read(&p).unwrap();
        let back = read_rows(&p, 2).unwrap();
        let got: Vec<f64> = back
            .iter()
            .flat_map(|r| r["v"].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), xs.len());
        let off: Vec<String> = xs
            .iter()
            .zip(&got)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .map(|(x, y)| format!("{x:e} read back as {y:e}"))
            .collect();
        assert!(
            off.is_empty(),
            "{} floats changed: {:?}",
            off.len(),
            &off[..off.len().min(5)]
        );
        write_rows(&p, &back).unwrap();
        assert!(std::fs::read(&p).unwrap() == first, "rewritten rows differ");
    }
}
