//! The single place where `eval` calls the `grade` and `reward` crates, so evaluation and
//! the audit extract, compare and vote exactly as training and the dataset stage do.

/// The content of the last `\boxed{}` of a response, if any.
pub fn extract(response: &str) -> Option<String> {
    grade::extract_boxed(response)
}

/// The answer of a response: in `boxed` mode the `\\boxed{}` that `rule` picks (first or
/// last), else what `mode` extracts (fallbacks, or free text).
pub fn extract_with(
    response: &str,
    mode: grade::ExtractMode,
    rule: grade::AnswerRule,
) -> Option<String> {
    match mode {
        grade::ExtractMode::Boxed => rule.extract(response),
        other => other.extract(response),
    }
}

/// Whether a model answer is mathematically equivalent to a reference answer.
pub fn equivalent(answer: &str, reference: &str) -> bool {
    grade::equivalent(answer, reference)
}

/// A majority vote over extracted answers (`None` = no `\boxed{}`), as the dataset stage
/// builds pseudo-labels: `label` is the first member of the largest equivalence class,
/// `p_hat` = |largest class| / number of extracted answers (0 when none were extracted).
pub use reward::vote::Vote;

/// The filter band of dataset construction (`0.3 ≤ p̂ ≤ 0.8` by default, plus the reference's
/// content filter).
pub use reward::vote::FilterBand;

/// Majority vote with `reward::vote::majority_vote` (the dataset stage's vote).
pub fn vote(answers: &[Option<String>]) -> Vote {
    reward::vote::majority_vote(answers)
}

/// Whether the dataset stage would keep `question` with this vote (`FilterBand::keep`:
/// p̂ in the band, a non-empty label, and the content filter when the band enables it).
pub fn keep(question: &str, vote: &Vote, filter: &FilterBand) -> bool {
    filter.keep(question, vote)
}
