//! The metric rows of a run (`RUN/metrics.jsonl` and the per-stage `metrics_*.jsonl`): one
//! struct per kind of row, written by the loop (`rzero`) and read by the report. Rows are
//! written as JSON objects with sorted keys (`rzero::rundir::RunDir::set_stage_metrics`
//! goes through a `serde_json::Value`), so the field order here does not matter.
//!
//! A GRPO step's row is the training loop's `train::StepStats` plus the rollout's
//! [`ChallengerRollout`] or [`SolverRollout`] and the `iter`/`phase` fields; an update's row
//! is `train::StepMetrics` with `update` and `epoch`. The report reads every row (and the
//! loop a stage's rows) through [`MetricRow`], whose fields are all optional (older runs
//! lack some).

use serde::{Deserialize, Serialize};

/// The dataset stage's row (`phase = "dataset"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    /// Iteration.
    pub iter: usize,
    /// `"dataset"`.
    pub phase: String,
    /// Always 0.
    pub step: u64,
    /// Questions sampled from the Challenger.
    pub generated: usize,
    /// Well-formed ones.
    pub valid: usize,
    /// Kept by the agreement filter.
    pub kept: usize,
    /// Challenger responses cut by the token limit.
    pub truncated: usize,
    /// Counts of p̂ in ten bins [0, 0.1), …, [0.9, 1.0].
    pub p_hat_hist: Vec<usize>,
    /// Mean p̂ of the well-formed questions (null when none).
    pub label_agreement_mean: Option<f64>,
    /// Wall time of the stage, seconds.
    pub seconds: f64,
}

/// The row of a skipped phase (the Solver's, when the dataset kept nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedRow {
    /// Iteration.
    pub iter: usize,
    /// The phase (`"solver"`).
    pub phase: String,
    /// Always 0.
    pub step: u64,
    /// Why (`"empty dataset"`).
    pub skipped: String,
}

/// The Challenger rollout's metrics, merged into its GRPO step's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerRollout {
    /// Mean total reward.
    pub reward_mean: f64,
    /// Standard deviation of the total reward.
    pub reward_std: f64,
    /// Mean uncertainty reward.
    pub r_unc_mean: f64,
    /// Mean repetition penalty.
    pub r_rep_mean: f64,
    /// Well-formed responses.
    pub format_valid: usize,
    /// Fraction of well-formed responses.
    pub format_valid_frac: f64,
    /// Mean p̂ of the well-formed questions (null when none).
    pub p_hat_mean: Option<f64>,
    /// Mean response length, tokens (the loop's own mean replaces it in the row).
    pub response_len_mean: f64,
    /// Fraction of responses cut by the token limit.
    pub truncated_frac: f64,
    /// The first well-formed question (null when none).
    pub sample_question: Option<String>,
}

/// The Solver rollout's metrics, merged into its GRPO step's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverRollout {
    /// Mean total reward.
    pub reward_mean: f64,
    /// Standard deviation of the total reward.
    pub reward_std: f64,
    /// Mean accuracy reward (against the pseudo-label).
    pub accuracy_mean: f64,
    /// Mean format reward.
    pub format_mean: f64,
    /// Mean response length, tokens (the loop's own mean replaces it in the row).
    pub response_len_mean: f64,
    /// Fraction of responses with a forced final answer.
    pub forced_frac: f64,
    /// Questions in the rollout.
    pub questions: usize,
}

/// A benchmark's row (`phase = "eval"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Iteration (0 = the base model).
    pub iter: usize,
    /// `"eval"`.
    pub phase: String,
    /// Benchmark name.
    pub bench: String,
    /// Greedy pass@1 (null when nothing was graded).
    #[serde(rename = "pass@1")]
    pub pass_at_1: Option<f64>,
    /// pass@1 after the judge's re-check, when a judge ran.
    #[serde(
        rename = "pass@1+judge",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pass_at_1_judged: Option<f64>,
    /// Questions.
    pub n: usize,
    /// Prompt and grading rule.
    pub kind: crate::bench::Kind,
}

impl EvalRow {
    /// The row of one benchmark's result in iteration `iter`.
    pub fn of(iter: usize, b: &crate::results::BenchResult) -> Self {
        Self {
            iter,
            phase: "eval".into(),
            bench: b.name.clone(),
            pass_at_1: b.pass_at_1,
            pass_at_1_judged: b.pass_at_1_judged,
            n: b.n,
            kind: b.kind,
        }
    }
}

/// The pseudo-label audit's row (`phase = "audit"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Iteration (0 = the base model).
    pub iter: usize,
    /// `"audit"`.
    pub phase: String,
    /// Questions audited.
    pub n: usize,
    /// Fraction of labels equal to the gold answer.
    pub label_accuracy: Option<f64>,
    /// Questions the filter keeps.
    pub kept: usize,
    /// Label accuracy among the kept ones.
    pub kept_label_accuracy: Option<f64>,
}

impl AuditRow {
    /// The row of an audit in iteration `iter`.
    pub fn of(iter: usize, a: &crate::audit::AuditReport) -> Self {
        Self {
            iter,
            phase: "audit".into(),
            n: a.n,
            label_accuracy: a.label_accuracy,
            kept: a.kept,
            kept_label_accuracy: a.kept_label_accuracy,
        }
    }
}

/// Any row of `metrics.jsonl` as the report and the loop read it: the fields of every kind
/// of row above that a reader uses, all optional, so rows of older runs (and a field of
/// another phase) read as None. A GRPO step's row has `update` None; an update's has it set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricRow {
    /// Iteration (0 = the base model, for eval and audit rows).
    pub iter: Option<u64>,
    /// `"challenger"`, `"solver"`, `"dataset"`, `"eval"` or `"audit"`.
    pub phase: Option<String>,
    /// Step (1-based).
    pub step: Option<u64>,
    /// The update within the step (1-based); None for a step's row.
    pub update: Option<u64>,
    /// Mean reward.
    pub reward_mean: Option<f64>,
    /// Loss (an update's, or the step's mean).
    pub loss: Option<f64>,
    /// KL to the reference.
    pub kl: Option<f64>,
    /// Approximate KL between the old and the current policy.
    pub ppo_kl: Option<f64>,
    /// Token entropy.
    pub entropy: Option<f64>,
    /// Gradient norm.
    pub grad_norm: Option<f64>,
    /// Fraction of responses with a non-zero advantage.
    pub adv_nonzero_frac: Option<f64>,
    /// Mean response length, tokens.
    pub response_len_mean: Option<f64>,
    /// Share of tokens clipped by the upper PPO clip (an update's).
    pub pg_clipfrac_higher: Option<f64>,
    /// Share of tokens clipped by the dual clip (an update's).
    pub pg_clipfrac_lower: Option<f64>,
    /// Challenger: mean uncertainty reward.
    pub r_unc_mean: Option<f64>,
    /// Challenger: mean repetition penalty.
    pub r_rep_mean: Option<f64>,
    /// Challenger: fraction of well-formed responses.
    pub format_valid_frac: Option<f64>,
    /// Solver: mean accuracy reward.
    pub accuracy_mean: Option<f64>,
    /// Solver: mean format reward.
    pub format_mean: Option<f64>,
    /// Dataset: questions sampled.
    pub generated: Option<f64>,
    /// Dataset: well-formed questions.
    pub valid: Option<f64>,
    /// Dataset: questions kept; audit: questions the filter keeps.
    pub kept: Option<f64>,
    /// Dataset: counts of p̂ per bin.
    pub p_hat_hist: Option<Vec<f64>>,
    /// Eval: benchmark name.
    pub bench: Option<String>,
    /// Eval: the benchmark's kind (`math`, `mmlu_pro`, …).
    pub kind: Option<String>,
    /// Eval: greedy pass@1.
    #[serde(rename = "pass@1")]
    pub pass_at_1: Option<f64>,
    /// Eval: maj@k.
    #[serde(rename = "maj@k")]
    pub maj_at_k: Option<f64>,
    /// Eval and audit: questions.
    pub n: Option<f64>,
    /// Audit: fraction of labels equal to the gold answer.
    pub label_accuracy: Option<f64>,
    /// Audit: label accuracy among the kept questions.
    pub kept_label_accuracy: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are written through a `serde_json::Value` (sorted keys): the bytes the loop wrote
    /// when it built these rows with `json!`.
    #[test]
    fn rows_serialise_as_the_loop_wrote_them() {
        let d = DatasetRow {
            iter: 1,
            phase: "dataset".into(),
            step: 0,
            generated: 6,
            valid: 4,
            kept: 3,
            truncated: 1,
            p_hat_hist: vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 3],
            label_agreement_mean: None,
            seconds: 1.5,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap().to_string(),
            r#"{"generated":6,"iter":1,"kept":3,"label_agreement_mean":null,"p_hat_hist":[0,0,0,1,0,0,0,0,0,3],"phase":"dataset","seconds":1.5,"step":0,"truncated":1,"valid":4}"#
        );
        let e = EvalRow {
            iter: 0,
            phase: "eval".into(),
            bench: "gsm8k".into(),
            pass_at_1: Some(0.5),
            pass_at_1_judged: None,
            n: 2,
            kind: crate::bench::Kind::Math,
        };
        let text = serde_json::to_value(&e).unwrap().to_string();
        assert_eq!(
            text,
            r#"{"bench":"gsm8k","iter":0,"kind":"math","n":2,"pass@1":0.5,"phase":"eval"}"#
        );
        // a GRPO row of an older run (no loss, a null reward) still reads
        let r: MetricRow =
            serde_json::from_str(r#"{"iter":1,"phase":"solver","step":2,"reward_mean":null}"#)
                .unwrap();
        assert_eq!((r.step, r.reward_mean, r.loss), (Some(2), None, None));
    }
}
