//! The options and the results of an evaluation (`options.json`, `results.json`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bench::Kind;
use crate::generate::SOLVER_SYSTEM_PROMPT;

/// Options of [`crate::run_eval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalOptions {
    /// The model's name or path, recorded in the results.
    pub model: String,
    /// Evaluate at most `limit` problems of each benchmark: the first ones for math, a
    /// seeded subset stratified by category for the general-domain sets.
    pub limit: Option<usize>,
    /// At most this many problems of each category (general-domain sets; for math the same
    /// as `limit`).
    pub per_category: Option<usize>,
    /// Multiple choice: guess a letter (seeded per question) when none is found, as the
    /// reference does; off = such responses count wrong. Guesses are counted either way.
    pub guess: bool,
    /// k for mean@k and maj@k; 0 = greedy pass@1 only.
    pub samples: usize,
    /// Sampling temperature of the k samples (greedy pass@1 always uses 0).
    pub temperature: f32,
    /// Top-p of the k samples.
    pub top_p: f32,
    /// Top-k of the k samples (None = off).
    pub top_k: Option<usize>,
    /// Maximum new tokens per response.
    pub max_new_tokens: usize,
    /// Prompts per `generate` call (and rows per journal write).
    pub batch_size: usize,
    /// Base sampling seed.
    pub seed: u64,
    /// How answers are taken from responses: `boxed` (default, as the training reward),
    /// `fallbacks`, or `free` (free text, for models that rarely box).
    pub extract: grade::ExtractMode,
    /// Which `\boxed{}` is the answer: `last-boxed` (rzero's default) or `first-boxed` (the
    /// reference's `evaluation/`). Grading only: responses do not depend on it.
    pub answer: grade::AnswerRule,
    /// The generator's forced-answer setting (its cue and budget, as JSON; `None` = off), so
    /// a resumed run must use the same one. The generator does the forcing.
    pub force_answer: Option<String>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            model: String::new(),
            limit: None,
            per_category: None,
            guess: true,
            samples: 0,
            temperature: 0.6,
            top_p: 0.95,
            top_k: None,
            max_new_tokens: 2048,
            batch_size: 64,
            seed: 0,
            extract: grade::ExtractMode::Boxed,
            answer: grade::AnswerRule::LastBoxed,
            force_answer: None,
        }
    }
}

impl EvalOptions {
    /// The options that change responses (a resumed run must match them).
    pub(crate) fn identity(&self) -> Value {
        let mut v = json!({
            "model": self.model, "samples": self.samples, "temperature": self.temperature,
            "top_p": self.top_p, "top_k": self.top_k, "max_new_tokens": self.max_new_tokens,
            "seed": self.seed, "system_prompt": SOLVER_SYSTEM_PROMPT,
        });
        if let Some(f) = &self.force_answer {
            v["force_answer"] = json!(f);
        }
        v
    }
}

/// Results of one benchmark. Metrics are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Benchmark name.
    pub name: String,
    /// Problems evaluated.
    pub n: usize,
    /// Greedy accuracy.
    #[serde(rename = "pass@1")]
    pub pass_at_1: Option<f64>,
    /// Mean accuracy of k samples (None without samples).
    #[serde(rename = "mean@k")]
    pub mean_at_k: Option<f64>,
    /// Majority-vote accuracy of k samples (None without samples).
    #[serde(rename = "maj@k")]
    pub maj_at_k: Option<f64>,
    /// k (0 without samples).
    pub k: usize,
    /// Greedy accuracy after the judge's re-check of the wrong answers (only with a judge;
    /// never merged into `pass@1`).
    #[serde(
        rename = "pass@1+judge",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pass_at_1_judged: Option<f64>,
    /// Greedy answers sent to the judge (those graded wrong), with a judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_rechecked: Option<usize>,
    /// Of those, how many the judge called correct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_flipped: Option<usize>,
    /// Fraction of greedy responses without an answer (no `\boxed{}` for math; the
    /// extraction-failure rate of the general-domain rule).
    pub no_answer_frac: Option<f64>,
    /// Mean length of greedy responses, in characters.
    pub response_chars_mean: Option<f64>,
    /// Prompt and grading rule (`math` for results written before general domains existed).
    #[serde(default)]
    pub kind: Kind,
    /// Multiple choice: fraction of responses whose letter was guessed (no letter found and
    /// guessing on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guessed_frac: Option<f64>,
    /// Unweighted mean of the per-category accuracies (`pass@1` is the micro average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_accuracy: Option<f64>,
    /// Accuracy per category, in the reference's reporting order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_category: Vec<CategoryResult>,
}

/// Greedy accuracy on one category of a general-domain benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryResult {
    /// The category (MMLU-Pro subject, BBEH task, SuperGPQA discipline).
    pub name: String,
    /// Problems evaluated.
    pub n: usize,
    /// Problems answered correctly.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Extraction failures.
    pub no_answer: usize,
}

/// Unweighted averages over benchmarks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Mean pass@1.
    #[serde(rename = "pass@1")]
    pub pass_at_1: Option<f64>,
    /// Mean mean@k.
    #[serde(rename = "mean@k")]
    pub mean_at_k: Option<f64>,
    /// Mean maj@k.
    #[serde(rename = "maj@k")]
    pub maj_at_k: Option<f64>,
    /// Mean pass@1 after the judge's re-check (only with a judge).
    #[serde(
        rename = "pass@1+judge",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pass_at_1_judged: Option<f64>,
}

/// Contents of `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// The model evaluated.
    pub model: String,
    /// The options used.
    pub options: EvalOptions,
    /// Per benchmark, in the order requested.
    pub benchmarks: Vec<BenchResult>,
    /// Averages over the math benchmarks (the paper's math average).
    pub average: Averages,
    /// The judge of the re-check ([`Judge::name`]), when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Unweighted mean pass@1 of the general-domain benchmarks, when any were evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general_average: Option<f64>,
}
