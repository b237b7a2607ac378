//! Accuracy metrics on graded responses.
//!
//! - pass@1: fraction of problems whose single greedy answer is correct.
//! - mean@k: per problem, the fraction of k sampled answers that are correct, averaged.
//! - maj@k: per problem, the majority answer of k samples (the same vote as the
//!   dataset stage's pseudo-labels) compared with the reference, averaged.
//!
//! Empty inputs give 0.0 (no problems, no accuracy), never NaN.

use crate::grading;

/// Fraction of `true` verdicts (pass@1 over greedy verdicts).
pub fn pass_at_1(verdicts: &[bool]) -> f64 {
    if verdicts.is_empty() {
        return 0.0;
    }
    verdicts.iter().filter(|&&v| v).count() as f64 / verdicts.len() as f64
}

/// Mean over problems of the fraction of correct samples. A problem with no samples counts 0.
pub fn mean_at_k(verdicts: &[Vec<bool>]) -> f64 {
    if verdicts.is_empty() {
        return 0.0;
    }
    let sum: f64 = verdicts.iter().map(|v| pass_at_1(v)).sum();
    sum / verdicts.len() as f64
}

/// Whether the majority answer of `answers` is equivalent to `reference`
/// (false when no answer was extracted).
pub fn majority_correct(answers: &[Option<String>], reference: &str) -> bool {
    match grading::vote(answers).label {
        Some(label) => grading::equivalent(&label, reference),
        None => false,
    }
}

/// maj@k: fraction of problems whose majority answer is correct.
/// `answers[i]` are the extracted answers of problem i, `references[i]` its known answer.
pub fn maj_at_k(answers: &[Vec<Option<String>>], references: &[String]) -> f64 {
    let n = answers.len().min(references.len());
    if n == 0 {
        return 0.0;
    }
    let ok = (0..n)
        .filter(|&i| majority_correct(&answers[i], &references[i]))
        .count();
    ok as f64 / n as f64
}

/// Unweighted mean of the values present (`None` when there are none): the benchmark
/// average, as the paper averages benchmark scores.
pub fn average(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        None
    } else {
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    #[test]
    fn pass_at_1_counts_true() {
        assert_eq!(pass_at_1(&[true, false, false, true, true]), 0.6);
        assert_eq!(pass_at_1(&[]), 0.0);
        assert_eq!(pass_at_1(&[false, false]), 0.0);
    }

    #[test]
    fn mean_at_k_averages_per_problem_fractions() {
        // (3/4 + 0/4 + 2/2) / 3: per-problem fractions, not pooled samples (pooled = 5/10).
        let v = vec![
            vec![true, true, true, false],
            vec![false; 4],
            vec![true, true],
        ];
        assert!((mean_at_k(&v) - (0.75 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
        assert_eq!(mean_at_k(&[vec![]]), 0.0);
    }

    #[test]
    fn maj_at_k_uses_the_majority_not_any_correct() {
        let answers = vec![
            vec![s("5"), s("7"), s("5"), None],   // majority 5 (correct)
            vec![s("3"), s("4"), s("4"), s("4")], // majority 4, reference 3: wrong although one sample is right
            vec![None, None],                     // nothing extracted: wrong
            vec![s("2"), s("9")],                 // tie: first class wins -> 2 (correct)
        ];
        let refs: Vec<String> = ["5", "3", "1", "2"].iter().map(|x| x.to_string()).collect();
        assert_eq!(maj_at_k(&answers, &refs), 0.5);
        assert!(majority_correct(&answers[0], "5"));
        assert!(!majority_correct(&answers[1], "3"));
        assert!(majority_correct(&answers[3], "2"));
    }

    #[test]
    fn average_skips_missing() {
        assert_eq!(
            average([Some(0.2), None, Some(0.4)]).map(|x| (x * 1e9).round() / 1e9),
            Some(0.3)
        );
        assert_eq!(average([None]), None);
    }
}
