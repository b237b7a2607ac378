//! BIG-Bench Extra Hard grading as R-Zero's `evaluation/eval_bbeh.py` does it (which copies
//! BBEH's own `evaluate_correctness`): the response's
//! [`extract_solution`](crate::solution::extract_solution) (last `\boxed{}`, else last
//! `Final Answer:`; nothing = the empty string) is cleaned by [`preprocess_sample`] and
//! compared with the cleaned reference by [`fuzzy_match`].

use crate::py;
use crate::solution::extract_solution;

/// The instruction appended to the question when the model has a chat template.
pub const INSTRUCTION: &str =
    "\nPlease reason step by step, and put your final answer option within \\boxed{}.";

/// The user message: `question + "\n"`, then the instruction.
pub fn query(question: &str) -> String {
    format!("{question}\n")
}

/// `strip_latex`: unwraps `$…$`, then `boxed{…}`, `text{…}`, `texttt{…}` (each keeping the
/// text between the first marker and the next one, without the final `}`).
pub fn strip_latex(response: &str) -> String {
    let mut r: String = response.to_string();
    if r.starts_with('$') && r.ends_with('$') {
        r = py::drop_last(&r[1..]).to_string();
    }
    for marker in ["boxed{", "text{", "texttt{"] {
        if r.contains(marker) && r.ends_with('}') {
            let head = py::drop_last(&r);
            r = head.split(marker).nth(1).unwrap_or_default().to_string();
        }
    }
    r
}

/// The answer prefixes `extract_answer` cuts at, in the reference's order.
pub const ANSWER_PREFIXES: [&str; 4] = [
    "The answer is:",
    "The final answer is ",
    "The final answer is: ",
    "The answer is ",
];

/// `extract_answer`: for each prefix in turn, the stripped text after its last occurrence;
/// then one trailing `.` dropped and [`strip_latex`].
pub fn extract_answer(sample: &str) -> String {
    let mut answer: &str = sample;
    for p in ANSWER_PREFIXES {
        if let Some((_, tail)) = answer.rsplit_once(p) {
            answer = py::strip(tail);
        }
    }
    if answer.ends_with('.') {
        answer = py::drop_last(answer);
    }
    strip_latex(answer)
}

/// `fuzzy_match`: equal strings; `(a)` vs `a` (either side); equal as floats; equal without
/// `'`; one side the other in `[…]`; the prediction with a trailing `?` removed.
pub fn fuzzy_match(prediction: &str, reference: &str) -> bool {
    if prediction == reference {
        return true;
    }
    let p: Vec<char> = prediction.chars().collect();
    let r: Vec<char> = reference.chars().collect();
    if p.len() == 3 && p[0] == '(' && p[2] == ')' {
        return r.len() == 1 && p[1] == r[0];
    }
    if r.len() == 3 && r[0] == '(' && r[2] == ')' {
        return p.len() == 1 && r[1] == p[0];
    }
    if let (Some(a), Some(b)) = (py::float(prediction), py::float(reference)) {
        if a == b {
            return true;
        }
    }
    if prediction.replace('\'', "") == reference.replace('\'', "") {
        return true;
    }
    if format!("[{reference}]") == prediction || format!("[{prediction}]") == reference {
        return true;
    }
    if prediction.ends_with('?') && py::drop_last(prediction) == reference {
        return true;
    }
    false
}

/// `preprocess_sample`: strip, [`extract_answer`], lower-case, `", "` → `","`, no `**`, the
/// first line only, one trailing `.` dropped.
pub fn preprocess_sample(sample: &str) -> String {
    let p = extract_answer(py::strip(sample)).to_lowercase();
    let p = p.replace(", ", ",").replace("**", "");
    let p = p.split('\n').next().unwrap_or_default();
    let p = if p.ends_with('.') {
        py::drop_last(p)
    } else {
        p
    };
    p.to_string()
}

/// `preprocess_reference`: strip, lower-case, `", "` → `","`.
pub fn preprocess_reference(reference: &str) -> String {
    py::strip(reference).to_lowercase().replace(", ", ",")
}

/// `evaluate_correctness(sample, reference)`.
pub fn evaluate_correctness(sample: &str, reference: &str) -> bool {
    fuzzy_match(&preprocess_sample(sample), &preprocess_reference(reference))
}

/// The verdict of one full response, as the reference's main loop computes it:
/// `evaluate_correctness(extract_solution(response) or "", reference)`. Also returns the
/// extracted solution (`None` = extraction failed).
pub fn grade(response: &str, reference: &str) -> (Option<String>, bool) {
    let sol = extract_solution(response);
    let ok = evaluate_correctness(sol.as_deref().unwrap_or(""), reference);
    (sol, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_branches() {
        assert!(evaluate_correctness("(A)", "a"));
        assert!(evaluate_correctness("b", "(B)"));
        assert!(!evaluate_correctness("(ab)", "ab"));
        assert!(evaluate_correctness("3.0", "3"));
        assert!(evaluate_correctness("'x'", "x"));
        assert!(evaluate_correctness("[a, b]", "a, b"));
        assert!(evaluate_correctness("yes?", "yes"));
        assert!(evaluate_correctness("The answer is: Valid.", "valid"));
        assert!(evaluate_correctness("**True**\nbecause", "true"));
        assert!(evaluate_correctness(r"$\boxed{7}$", "7"));
        assert!(!evaluate_correctness("", "7"));
        assert_eq!(strip_latex(r"\text{a}"), "a");
        assert_eq!(strip_latex("$"), "");
        assert_eq!(grade(r"so \boxed{No}", "no"), (Some("No".into()), true));
    }
}
