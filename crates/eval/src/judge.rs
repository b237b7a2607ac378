//! The optional LLM re-check of wrong answers, as the reference's
//! `evaluation/results_recheck.py` does it for its published scores (with `gpt-4o`).
//!
//! After grading, every greedy response graded wrong (no answer included) is sent to a judge
//! model with the reference's exact prompt ([`judge_prompt`]); a reply containing "yes"
//! (any case) turns the verdict into correct ([`judge_says_yes`]). Correct answers are never
//! sent. [`run_eval_judged`](crate::run_eval_judged) reports the score with and without the
//! judge side by side (`pass@1` and `pass@1+judge`), never mixed.
//!
//! The reference calls `process_example(results[i]['answer'], results[i]['response'])`, whose
//! parameters are named `(answer, response)`: so the *reference answer* fills the prompt's
//! "there is a answer" slot and the *whole model response* its "ground truth answer" slot.
//! [`judge_prompt`] keeps that order, word for word.
//!
//! The HTTP client is not here: [`Judge`] is "prompts in, replies out"; the binary
//! implements it on `remote::OpenAiClient` (chat completions), tests with scripted fakes or
//! a local server.

use crate::error::Result;

/// The judge's system message (`results_recheck.py`).
pub const JUDGE_SYSTEM_PROMPT: &str = "You are a math answer checker.";

/// The judge's sampling temperature (`results_recheck.py`: `"temperature": 0.1`).
pub const JUDGE_TEMPERATURE: f32 = 0.1;

/// One question to the judge: a system and a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgePrompt {
    /// The system message ([`JUDGE_SYSTEM_PROMPT`]).
    pub system: String,
    /// The user message.
    pub user: String,
}

/// The reference's judge prompt for the reference answer `gold` and the model's full
/// `response` (see the module docs for the order of the two slots).
///
/// ```
/// let p = eval::judge::judge_prompt("6", "so \\boxed{6}");
/// assert_eq!(p.system, "You are a math answer checker.");
/// assert!(p.user.starts_with("Hi, there is a answer: 6\n\n, and the ground truth answer is: so"));
/// ```
pub fn judge_prompt(gold: &str, response: &str) -> JudgePrompt {
    JudgePrompt {
        system: JUDGE_SYSTEM_PROMPT.to_string(),
        user: format!(
            "Hi, there is a answer: {gold}\n\n, and the ground truth answer is: {response}\n\n, \
             please check whether the answer is correct or not, and return the **only** Yes or No."
        ),
    }
}

/// The reference's reading of a judge reply: `"yes" in reply.lower()`.
///
/// ```
/// assert!(eval::judge::judge_says_yes("Yes."));
/// assert!(!eval::judge::judge_says_yes("No"));
/// ```
pub fn judge_says_yes(reply: &str) -> bool {
    reply.to_lowercase().contains("yes")
}

/// A judge model: one reply per prompt, in order.
pub trait Judge {
    /// What results.json records as the judge (e.g. `gpt-4o @ https://api.openai.com`).
    fn name(&self) -> String;

    /// The reply text of each prompt. Any failure fails the call (the eval stops; the
    /// replies already journaled are kept, so a rerun resumes).
    fn ask(&mut self, prompts: &[JudgePrompt]) -> Result<Vec<String>>;
}

impl<J: Judge + ?Sized> Judge for &mut J {
    fn name(&self) -> String {
        (**self).name()
    }
    fn ask(&mut self, prompts: &[JudgePrompt]) -> Result<Vec<String>> {
        (**self).ask(prompts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_the_reference_text() {
        let p = judge_prompt("\\frac{1}{2}", "The answer is 0.5.");
        assert_eq!(
            p.user,
            "Hi, there is a answer: \\frac{1}{2}\n\n, and the ground truth answer is: The answer is 0.5.\n\n, please check whether the answer is correct or not, and return the **only** Yes or No."
        );
    }

    #[test]
    fn yes_anywhere_any_case() {
        for r in ["Yes", "yes", "YES.", "**Yes**", "Eyes"] {
            assert!(judge_says_yes(r), "{r}");
        }
        for r in ["No", "", "no, incorrect", "Y e s"] {
            assert!(!judge_says_yes(r), "{r}");
        }
    }
}
