//! Answer extraction of R-Zero's general-domain evaluation scripts
//! (`evaluation/eval_mmlupro.py`, `eval_supergpqa.py`, `eval_bbeh.py` in
//! `Chengsong-Huang/R-Zero`, identical in the three): the content of the last `\boxed{}`
//! (braces nested at most three deep, as the reference's regular expression allows), else the
//! text after the last `Final Answer:` (else `The answer is:`) up to the end of its line.
//!
//! The reference's regular expressions are used verbatim; the `regex` crate has the same
//! leftmost-first match semantics as Python's `re` for them (no back-references or
//! look-around), and runs in linear time.

use std::sync::LazyLock;

use regex::Regex;

use crate::py;

static BOXED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\boxed\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}").expect("valid regex")
});
static FINAL_ANSWER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Final Answer:((?:[^<]|<[^<])*?)\n").expect("valid regex"));
static THE_ANSWER_IS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"The answer is:((?:[^<]|<[^<])*?)\n").expect("valid regex"));

/// The reference's stop words: the response is cut at the first of each.
pub const STOP_WORDS: [&str; 3] = ["</s>", "<|im_end|>", "<|endoftext|>"];

/// `extract_last_boxed`: the content of the last `\boxed{...}` the reference's pattern
/// matches (non-overlapping matches, scanned left to right), or `None`.
pub fn extract_last_boxed(text: &str) -> Option<&str> {
    BOXED
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// `extract_last_final_answer`: the text after the last `Final Answer:` up to the next
/// newline (a newline must follow); when there is none, the same for `The answer is:`.
pub fn extract_last_final_answer(text: &str) -> Option<&str> {
    for re in [&*FINAL_ANSWER, &*THE_ANSWER_IS] {
        if let Some(m) = re.captures_iter(text).last().and_then(|c| c.get(1)) {
            return Some(m.as_str());
        }
    }
    None
}

/// `extract_solution`: drops a chat transcript's prompt (everything before the first
/// `<|im_start|>assistant` when `<|im_start|>user` occurs, else everything up to the last
/// `Assistant:`), cuts at the stop words, then returns the last box's content when it is
/// non-empty, else [`extract_last_final_answer`].
pub fn extract_solution(response: &str) -> Option<String> {
    let mut out: &str = response;
    if response.contains("<|im_start|>user") {
        if let Some(i) = response.find("<|im_start|>assistant") {
            out = &response[i..];
        }
    } else if let Some((_, tail)) = response.rsplit_once("Assistant:") {
        out = py::strip(tail);
    }
    for stop in STOP_WORDS {
        if let Some((head, _)) = out.split_once(stop) {
            out = py::strip(head);
        }
    }
    match extract_last_boxed(out) {
        Some(b) if !b.is_empty() => Some(b.to_string()),
        _ => extract_last_final_answer(out).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_fallbacks() {
        assert_eq!(extract_last_boxed(r"\boxed{A} then \boxed{B}"), Some("B"));
        assert_eq!(extract_last_boxed(r"\boxed{\text{C}}"), Some(r"\text{C}"));
        assert_eq!(extract_last_boxed(r"\boxed{a{b{c{d}}}}"), None);
        assert_eq!(
            extract_solution("Final Answer: B\nmore\nFinal Answer: C\n").as_deref(),
            Some(" C")
        );
        assert_eq!(extract_solution("Final Answer: B").as_deref(), None);
        assert_eq!(
            extract_solution("x \\boxed{} The answer is: D\n").as_deref(),
            Some(" D")
        );
        assert_eq!(
            extract_solution("\\boxed{A}<|im_end|>\\boxed{B}").as_deref(),
            Some("A")
        );
        assert_eq!(
            extract_solution("User: q \\boxed{A}\nAssistant: \\boxed{B}").as_deref(),
            Some("B")
        );
    }
}
