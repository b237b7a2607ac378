//! Multiple-choice rules of R-Zero's `evaluation/eval_mmlupro.py` (and `eval_supergpqa.py`,
//! which is the same): the prompt lists the options as `(A): …` and asks for the option
//! letter in `\boxed{}`; the prediction is the first of `A`..`J` (in that order) that occurs
//! anywhere in [`extract_solution`](crate::solution::extract_solution)'s text. When there is
//! no text or no letter in it, the reference guesses a letter at random; here
//! [`prediction`] returns `None` and [`guess_letter`] gives a seeded guess, so the caller
//! can count guesses and switch them off.

use crate::solution::extract_solution;

/// The option letters, in the order the reference tries them.
pub const LETTERS: [char; 10] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'];

/// The instruction appended to the question when the model has a chat template
/// (`eval_mmlupro.py`). SuperGPQA's says "Only put the letter" ([`INSTRUCTION_LETTER`]).
pub const INSTRUCTION: &str = "\nPlease reason step by step, and put your final answer option within \\boxed{}. Only put the option letter in the box, e.g. \\boxed{A}. There is only one correct answer.";

/// The instruction of `eval_supergpqa.py`, and of every script's prompt for models without a
/// chat template.
pub const INSTRUCTION_LETTER: &str = "\nPlease reason step by step, and put your final answer option within \\boxed{}. Only put the letter in the box, e.g. \\boxed{A}. There is only one correct answer.";

/// `form_options`: `Options are:\n(A): first\n(B): second\n…` (at most ten options; more are
/// dropped, as `zip` with ten letters does).
pub fn form_options(options: &[String]) -> String {
    let mut s = String::from("Options are:\n");
    for (o, l) in options.iter().zip(LETTERS) {
        s.push('(');
        s.push(l);
        s.push_str("): ");
        s.push_str(o);
        s.push('\n');
    }
    s
}

/// The user message: `question + "\n" + form_options(options) + "\n"`, then the
/// instruction.
pub fn query(question: &str, options: &[String]) -> String {
    format!("{question}\n{}\n", form_options(options))
}

/// The first letter `A`..`J` that occurs in `solution` (the reference's loop), if any.
pub fn letter_in(solution: &str) -> Option<char> {
    LETTERS.into_iter().find(|&l| solution.contains(l))
}

/// The reference's prediction before any random guess: the letter found in the extracted
/// solution; `None` when nothing is extracted or it holds no letter `A`..`J`.
pub fn prediction(response: &str) -> Option<char> {
    extract_solution(response).and_then(|s| letter_in(&s))
}

/// A deterministic stand-in for the reference's `random.choice` over the ten letters:
/// `seed` (derive it from the run seed and the question id) mixed by SplitMix64.
pub fn guess_letter(seed: u64) -> char {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    LETTERS[(z % 10) as usize]
}

/// The verdict of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The extracted letter (`None` = extraction failed).
    pub prediction: Option<char>,
    /// The guessed letter when extraction failed and guessing is on.
    pub guess: Option<char>,
    /// Whether the prediction (or the guess) is the answer letter.
    pub correct: bool,
}

/// Grades `response` against the answer letter `answer` (compared after trimming, as the
/// reference compares `entry["answer"] == prediction`). `guess_seed`: `Some(seed)` guesses
/// like the reference when no letter is found, `None` counts such responses wrong.
pub fn grade(response: &str, answer: &str, guess_seed: Option<u64>) -> Verdict {
    let prediction = prediction(response);
    let guess = match (prediction, guess_seed) {
        (None, Some(seed)) => Some(guess_letter(seed)),
        _ => None,
    };
    let chosen = prediction.or(guess);
    let answer = answer.trim();
    let correct = chosen.is_some_and(|c| {
        let mut b = [0u8; 4];
        answer == c.encode_utf8(&mut b)
    });
    Verdict {
        prediction,
        guess,
        correct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_guesses() {
        assert_eq!(prediction(r"so \boxed{C}"), Some('C'));
        // The first letter in A..J order, not the first in the text.
        assert_eq!(prediction(r"\boxed{D or B}"), Some('B'));
        assert_eq!(prediction("Final Answer: (E)\n"), Some('E'));
        assert_eq!(prediction(r"\boxed{x}"), None);
        assert_eq!(prediction("no answer"), None);
        let g: std::collections::HashSet<char> = (0..200).map(guess_letter).collect();
        assert_eq!(g.len(), 10, "guesses cover all letters");
        assert_eq!(guess_letter(7), guess_letter(7));
        let v = grade("nothing", "A", None);
        assert!(!v.correct && v.guess.is_none());
        let seed = (0..100).find(|&s| guess_letter(s) == 'A').unwrap();
        let v = grade("nothing", "A", Some(seed));
        assert!(v.correct && v.prediction.is_none() && v.guess == Some('A'));
        assert_eq!(
            form_options(&["x".into(), "y".into()]),
            "Options are:\n(A): x\n(B): y\n"
        );
    }
}
