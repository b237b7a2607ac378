//! Majority-vote pseudo-labels and the p̂ filter of dataset construction.
//!
//! R-Zero (`question_evaluate/evaluate.py`, `vllm_service_init/start_vllm_server.py`)
//! extracts the last `\boxed{}` of each of the Solver's m answers, groups them greedily
//! (each answer joins the first existing class whose representative is equivalent), takes
//! `max(answer_counts, key=answer_counts.get)` as the label and
//! `p̂ = largest class / number of answers`.
//!
//! - **Classes** come from [`grade::group_answers`] (same greedy, first-member order).
//! - **Label**: the first member (as written) of the largest class. **Ties** go to the class
//!   whose first member comes first: Python's `max` returns the first maximal key of an
//!   insertion-ordered dict, and classes are inserted in order of first appearance.
//! - **Departures** (`docs/method.md`): a response without `\boxed{}` has no answer (the
//!   reference's `mathruler` returns the string `"None"`, which then counts as an answer);
//!   an empty or whitespace-only boxed answer is not an answer (the reference drops empty
//!   strings); p̂ = largest class / number of *extracted* answers, 0 when there are none.
//! - **Filter**: keep 0.3 ≤ p̂ ≤ 0.8 with a non-empty label (`upload.py`
//!   `--min_score 0.3 --max_score 0.8`, `answer != ''`). `evaluate.py` also drops questions
//!   containing "证明" (proof) or "box" and labels containing "text";
//!   [`FilterBand::reference_content_filter`] turns that on.

use serde::{Deserialize, Serialize};

/// The outcome of a majority vote over m sampled answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The pseudo-label: the first member of the largest class; `None` without answers.
    pub label: Option<String>,
    /// Largest class / number of extracted answers (0 when none were extracted).
    pub p_hat: f64,
    /// Size of each equivalence class, classes in order of first appearance.
    pub class_sizes: Vec<usize>,
    /// Index of the majority class in `class_sizes` (`None` without answers).
    pub majority_class: Option<usize>,
    /// Number of answers that were extracted (non-empty).
    pub n_extracted: usize,
}

/// Majority vote with `grade`'s equivalence classes.
pub fn majority_vote(answers: &[Option<String>]) -> Vote {
    majority_vote_with(answers, grade::group_answers)
}

/// Majority vote with a caller-supplied grouping (classes of indices into the extracted
/// answers, each in input order, classes ordered by first member — `grade::group_answers`'s
/// contract).
pub fn majority_vote_with(
    answers: &[Option<String>],
    group: impl FnOnce(&[String]) -> Vec<Vec<usize>>,
) -> Vote {
    let extracted: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_deref())
        .filter(|a| !a.trim().is_empty())
        .map(str::to_string)
        .collect();
    if extracted.is_empty() {
        return Vote {
            label: None,
            p_hat: 0.0,
            class_sizes: Vec::new(),
            majority_class: None,
            n_extracted: 0,
        };
    }
    let classes = group(&extracted);
    let class_sizes: Vec<usize> = classes.iter().map(Vec::len).collect();
    // First class of maximal size (strict `>` keeps the earliest on ties).
    let mut best: Option<usize> = None;
    for (k, &s) in class_sizes.iter().enumerate() {
        if s > 0 && best.is_none_or(|b| s > class_sizes[b]) {
            best = Some(k);
        }
    }
    let label = best
        .and_then(|k| classes[k].first())
        .and_then(|&i| extracted.get(i))
        .cloned();
    let max = best.map_or(0, |k| class_sizes[k]);
    Vote {
        label,
        p_hat: max as f64 / extracted.len() as f64,
        class_sizes,
        majority_class: best,
        n_extracted: extracted.len(),
    }
}

/// How the m sampled answers of a question are counted into p̂.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum VoteRule {
    /// rzero's rule ([`majority_vote`]): only extracted, non-empty answers count; classes by
    /// equivalence; p̂ = largest class / number of extracted answers.
    #[default]
    Extracted,
    /// The reference's Challenger reward (`vllm_service_init/start_vllm_server.py`,
    /// `process_single`): a response without `\boxed{}` answers the string `"None"` (a class
    /// that can win), an empty box is skipped, two answers that both contain `"no "` (any
    /// case) are one class, and p̂ = largest class / m (every sample, empty ones included).
    ReferenceAllSamples,
    /// The reference's dataset script (`question_evaluate/evaluate.py`): the same classes,
    /// and p̂ = largest class / number of non-empty answers (`"None"` included).
    ReferenceNonEmpty,
}

/// Majority vote under `rule` (see [`VoteRule`]); equivalence from `grade`.
pub fn majority_vote_rule(answers: &[Option<String>], rule: VoteRule) -> Vote {
    match rule {
        VoteRule::Extracted => majority_vote(answers),
        VoteRule::ReferenceAllSamples | VoteRule::ReferenceNonEmpty => {
            let as_ref: Vec<Option<String>> = answers
                .iter()
                .map(|a| Some(a.clone().unwrap_or_else(|| "None".to_string())))
                .collect();
            let mut v = majority_vote_with(&as_ref, reference_groups);
            if rule == VoteRule::ReferenceAllSamples && !answers.is_empty() {
                let max = v.majority_class.map_or(0, |k| v.class_sizes[k]);
                v.p_hat = max as f64 / answers.len() as f64;
            }
            v
        }
    }
}

/// The reference's greedy classes: each answer joins the first class whose first member
/// equals it, or shares a `"no "` with it (both lower-cased), or is equivalent to it
/// (mathruler's `grade_answer` in either direction; here [`grade::equivalent`]).
pub fn reference_groups(answers: &[String]) -> Vec<Vec<usize>> {
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let a_no = a.to_lowercase().contains("no ");
        let hit = classes.iter().position(|c| {
            let rep = &answers[c[0]];
            rep == a
                || (a_no && rep.to_lowercase().contains("no "))
                || grade::equivalent(a, rep)
                || grade::equivalent(rep, a)
        });
        match hit {
            Some(k) => classes[k].push(i),
            None => classes.push(vec![i]),
        }
    }
    classes
}

/// The agreement band of dataset construction: keep `low <= p̂ <= high`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterBand {
    /// Lowest kept p̂, inclusive. Default 0.3 (`upload.py --min_score 0.3`).
    pub low: f64,
    /// Highest kept p̂, inclusive. Default 0.8 (`upload.py --max_score 0.8`).
    pub high: f64,
    /// Also apply `evaluate.py`'s content filter (drop questions containing "证明" or
    /// "box" (any case), and labels containing "text" (any case)). Default true.
    pub reference_content_filter: bool,
}

impl Default for FilterBand {
    fn default() -> Self {
        Self {
            low: 0.3,
            high: 0.8,
            reference_content_filter: true,
        }
    }
}

impl FilterBand {
    /// Checks `0 <= low <= high <= 1`.
    pub fn validate(&self) -> crate::Result<()> {
        if !(0.0..=1.0).contains(&self.low)
            || !(0.0..=1.0).contains(&self.high)
            || self.low > self.high
        {
            return Err(crate::Error::Config(format!(
                "filter band needs 0 <= low <= high <= 1, got low {} high {}",
                self.low, self.high
            )));
        }
        Ok(())
    }

    /// Whether p̂ lies in the band (inclusive at both ends).
    pub fn contains(&self, p_hat: f64) -> bool {
        self.low <= p_hat && p_hat <= self.high
    }

    /// Whether a question with this vote is kept for Solver training: p̂ in the band, a
    /// non-empty label and, when enabled, the reference's content filter.
    pub fn keep(&self, question: &str, vote: &Vote) -> bool {
        let Some(label) = vote.label.as_deref() else {
            return false;
        };
        if label.trim().is_empty() || !self.contains(vote.p_hat) {
            return false;
        }
        !self.reference_content_filter || passes_content_filter(question, label)
    }
}

/// `keep(p̂, band)`: the band test alone.
pub fn keep(p_hat: f64, band: &FilterBand) -> bool {
    band.contains(p_hat)
}

/// `evaluate.py`: `not ("证明" in question or "box" in question.lower() or
/// "text" in label.lower())`.
pub fn passes_content_filter(question: &str, label: &str) -> bool {
    !(question.contains("证明")
        || question.to_lowercase().contains("box")
        || label.to_lowercase().contains("text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's counting: "None" for a missing box, "no " classes, and the two
    /// denominators. 5 unboxed + 5 agreeing answers: the reference's server rewards
    /// p̂ = 0.5, rzero's extracted-answer rule p̂ = 1.
    #[test]
    fn reference_rules_count_none_and_no_answers() {
        let mut a: Vec<Option<String>> = vec![None; 5];
        a.extend(std::iter::repeat_n(Some("7".to_string()), 5));
        let v = majority_vote_rule(&a, VoteRule::ReferenceAllSamples);
        assert_eq!(v.p_hat, 0.5);
        assert_eq!(
            v.label.as_deref(),
            Some("None"),
            "ties go to the first class"
        );
        assert_eq!(majority_vote_rule(&a, VoteRule::Extracted).p_hat, 1.0);
        assert_eq!(
            majority_vote_rule(&a, VoteRule::ReferenceNonEmpty).p_hat,
            0.5
        );
        // An empty box is no class; the server still divides by m, the dataset script not.
        let b = vec![
            Some("".to_string()),
            Some("3".into()),
            Some("3".into()),
            Some("4".into()),
        ];
        assert_eq!(
            majority_vote_rule(&b, VoteRule::ReferenceAllSamples).p_hat,
            0.5
        );
        assert!(
            (majority_vote_rule(&b, VoteRule::ReferenceNonEmpty).p_hat - 2.0 / 3.0).abs() < 1e-12
        );
        // Two answers that both contain "no " are one class, whatever else they say.
        let c = vec![
            Some("No solution".to_string()),
            Some("there is no x".into()),
            Some("5".into()),
        ];
        let v = majority_vote_rule(&c, VoteRule::ReferenceNonEmpty);
        assert_eq!(v.class_sizes, vec![2, 1]);
        assert_eq!(
            majority_vote_rule(&c, VoteRule::Extracted).class_sizes,
            vec![1, 1, 1]
        );
    }

    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    /// Exact string equality after trimming: a stand-in grouping independent of `grade`.
    fn exact(answers: &[String]) -> Vec<Vec<usize>> {
        let mut classes: Vec<Vec<usize>> = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            match classes
                .iter_mut()
                .find(|c| answers[c[0]].trim() == a.trim())
            {
                Some(c) => c.push(i),
                None => classes.push(vec![i]),
            }
        }
        classes
    }

    #[test]
    fn majority_and_p_hat() {
        let v = majority_vote_with(&[s("2"), s("3"), s("2"), None, s("2"), s("4")], exact);
        assert_eq!(v.label.as_deref(), Some("2"));
        assert_eq!(v.n_extracted, 5);
        assert_eq!(v.class_sizes, vec![3, 1, 1]);
        assert_eq!(v.p_hat, 3.0 / 5.0);
    }

    #[test]
    fn ties_go_to_first_appearance() {
        let v = majority_vote_with(&[s("5"), s("7"), s("7"), s("5")], exact);
        assert_eq!(v.label.as_deref(), Some("5"));
        assert_eq!(v.majority_class, Some(0));
        assert_eq!(v.p_hat, 0.5);
        let v = majority_vote_with(&[s("7"), s("5"), s("5"), s("7")], exact);
        assert_eq!(v.label.as_deref(), Some("7"));
    }

    #[test]
    fn empty_answer_sets() {
        let v = majority_vote_with(&[], exact);
        assert_eq!((v.label, v.p_hat, v.n_extracted), (None, 0.0, 0));
        let v = majority_vote_with(&[None, s(""), s("  ")], exact);
        assert_eq!((v.label.clone(), v.p_hat, v.n_extracted), (None, 0.0, 0));
        assert!(!FilterBand::default().keep("q", &v));
    }

    #[test]
    fn band_is_inclusive() {
        let b = FilterBand::default();
        assert!(keep(0.3, &b) && keep(0.8, &b) && keep(0.5, &b));
        assert!(!keep(0.2999999, &b) && !keep(0.8000001, &b) && !keep(0.0, &b) && !keep(1.0, &b));
        // m = 10: 3/10 and 8/10 as computed from counts are kept.
        assert!(
            keep(3.0 / 10.0, &b)
                && keep(8.0 / 10.0, &b)
                && !keep(9.0 / 10.0, &b)
                && !keep(2.0 / 10.0, &b)
        );
        assert!(b.validate().is_ok());
        assert!(FilterBand {
            low: 0.9,
            high: 0.1,
            ..b.clone()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn keep_checks_label_and_content() {
        let b = FilterBand::default();
        let v = majority_vote_with(&[s("1"), s("1"), s("2"), s("3")], exact); // p̂ = 0.5
        assert!(b.keep("What is 1?", &v));
        assert!(!b.keep("Put the answer in a BOX", &v));
        assert!(!b.keep("请证明", &v));
        let t = majority_vote_with(&[s(r"\text{red}"), s(r"\text{red}"), s("2"), s("3")], exact);
        assert!(!b.keep("What colour?", &t));
        let off = FilterBand {
            reference_content_filter: false,
            ..b
        };
        assert!(off.keep("Put the answer in a BOX", &v));
        assert!(off.keep("What colour?", &t));
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let b: FilterBand = serde_json::from_str(r#"{"low": 0.2}"#).unwrap();
        assert_eq!((b.low, b.high), (0.2, 0.8));
        assert!(serde_json::from_str::<FilterBand>(r#"{"lo": 0.2}"#).is_err());
    }
}
