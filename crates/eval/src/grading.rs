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

/// The verdict of one response on a general-domain benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneralVerdict {
    /// What the rule extracted: the option letter (MMLU-Pro, SuperGPQA) or the solution text
    /// (BBEH: the last `\boxed{}` or `Final Answer:`); `None` = extraction failed.
    pub extracted: Option<String>,
    /// The letter guessed because extraction failed (multiple choice, guessing on).
    pub guess: Option<String>,
    /// Whether the response counts as correct (a correct guess included).
    pub correct: bool,
}

/// Grades a response of a general-domain benchmark with the reference's rule.
/// `guess_seed`: `Some` guesses a letter (seeded) where a multiple-choice response has none,
/// as the reference does with `random.choice`; `None` counts it wrong.
pub fn grade_general(
    kind: crate::Kind,
    response: &str,
    answer: &str,
    guess_seed: Option<u64>,
) -> GeneralVerdict {
    match kind {
        crate::Kind::Bbeh => {
            let (sol, correct) = grade::bbeh::grade(response, answer);
            GeneralVerdict {
                extracted: sol,
                guess: None,
                correct,
            }
        }
        crate::Kind::MmluPro | crate::Kind::SuperGpqa => {
            let v = grade::mmlu_pro::grade(response, answer, guess_seed);
            GeneralVerdict {
                extracted: v.prediction.map(String::from),
                guess: v.guess.map(String::from),
                correct: v.correct,
            }
        }
        crate::Kind::Math => {
            let extracted = extract(response);
            let correct = extracted.as_deref().is_some_and(|a| equivalent(a, answer));
            GeneralVerdict {
                extracted,
                guess: None,
                correct,
            }
        }
    }
}
