//! Extraction of the final answer from a model response: the content of the last
//! `\boxed{...}` / `\fbox{...}` (brace matching, escaped braces skipped), with
//! optional fallbacks ("the answer is X", `Final Answer:` lines, choice letters).

use crate::normalize::matching_brace;

/// Which fallbacks [`extract_answer`] may use when there is no `\boxed{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Accept "the answer is X".
    pub answer_is: bool,
    /// Accept a `Final Answer: X` line (also "The final answer is X").
    pub final_answer: bool,
    /// Accept a multiple-choice letter such as `(B)` or `Answer: B`.
    pub choice_letter: bool,
}

impl ExtractOptions {
    /// Every fallback enabled.
    pub fn all() -> ExtractOptions {
        ExtractOptions {
            answer_is: true,
            final_answer: true,
            choice_letter: true,
        }
    }
}

/// The content of the last `\boxed{...}` or `\fbox{...}`; `None` when absent or when
/// the last one is unclosed. `\boxed 5` (no braces) gives `5`.
pub fn extract_boxed(text: &str) -> Option<String> {
    let start = [r"\boxed", r"\fbox"]
        .iter()
        .filter_map(|pat| {
            // The last occurrence not followed by a letter (\boxedx is another macro).
            text.rmatch_indices(*pat)
                .filter(|(i, m)| {
                    !text[i + m.len()..].starts_with(|c: char| c.is_ascii_alphabetic())
                })
                .map(|(i, m)| (i, i + m.len()))
                .next()
        })
        .max()?;
    let rest = &text[start.1..];
    let trimmed = rest.trim_start();
    if trimmed.starts_with('{') {
        let cs: Vec<char> = trimmed.chars().collect();
        let end = matching_brace(&cs, 0)?;
        let inner: String = cs[1..end].iter().collect();
        return Some(inner.trim().to_string());
    }
    if rest.starts_with(' ') {
        let tok: String = trimmed
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '$')
            .collect();
        if !tok.is_empty() {
            return Some(tok);
        }
    }
    None
}

/// The boxed answer, or else the first enabled fallback that matches, in the order
/// final answer line, "the answer is", choice letter.
pub fn extract_answer(text: &str, opts: &ExtractOptions) -> Option<String> {
    if let Some(b) = extract_boxed(text) {
        return Some(b);
    }
    if opts.final_answer {
        if let Some(a) = final_answer(text) {
            return Some(a);
        }
    }
    if opts.answer_is {
        if let Some(a) = after_last(text, "answer is").and_then(|t| clean(sentence(t))) {
            return Some(a);
        }
    }
    if opts.choice_letter {
        return choice_letter_string(text);
    }
    None
}

/// The text after the last case-insensitive occurrence of `pat`.
fn after_last<'a>(text: &'a str, pat: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let i = lower.rfind(pat)?;
    text.get(i + pat.len()..)
}

/// The first line of `t`, cut at the end of its first sentence.
fn sentence(t: &str) -> &str {
    let t = t.trim_start_matches([':', ' ', '*']);
    let line = t.split('\n').next().unwrap_or("");
    let bytes = line.as_bytes();
    let mut dollars = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'$' {
            dollars += 1;
        }
        // A period ends the sentence unless it sits inside math or between digits.
        if b == b'.' && dollars % 2 == 0 {
            let next = bytes.get(i + 1).copied();
            if next.is_none_or(|c| c == b' ' || c == b'*') {
                return &line[..i];
            }
        }
    }
    line
}

/// Strips math delimiters, emphasis and trailing punctuation; `None` when empty.
fn clean(s: &str) -> Option<String> {
    let mut t = s.trim();
    // A few rounds suffice for real delimiters; the bound keeps hostile input linear.
    for _ in 0..4 {
        let before = t;
        for (o, c) in [
            ("$$", "$$"),
            ("$", "$"),
            ("\\(", "\\)"),
            ("\\[", "\\]"),
            ("**", "**"),
            ("\"", "\""),
        ] {
            if let Some(r) = t.strip_prefix(o) {
                t = r.strip_suffix(c).unwrap_or(r).trim();
            }
            if let Some(r) = t.strip_suffix(c) {
                if !r.contains(o) {
                    t = r.trim();
                }
            }
        }
        t = t.trim_end_matches(['.', ',', ';']).trim();
        if t == before {
            break;
        }
    }
    (!t.is_empty()).then(|| t.to_string())
}

fn final_answer(text: &str) -> Option<String> {
    let rest = after_last(text, "final answer")?;
    let rest = rest.trim_start_matches(['*', ':', ' ']);
    // "Final Answer: The final answer is $X$. I hope it is correct."
    let lower = rest.to_ascii_lowercase();
    let rest = if lower.trim_start().starts_with("is") {
        rest.trim_start().get(2..)?
    } else {
        rest
    };
    let a = clean(sentence(rest))?;
    // "The largest $n$ is 34": the part after the last " is ".
    match a.rfind(" is ") {
        Some(k) => clean(&a[k + 4..]),
        None => Some(a),
    }
}

fn is_letter(c: char) -> bool {
    ('A'..='J').contains(&c)
}

fn choice_letter(text: &str) -> Option<char> {
    let t = clean(text)?;
    let t = t.trim_start_matches("\\text{").trim_end_matches('}');
    let core = t.trim_start_matches('(').trim_end_matches([')', '.']);
    let mut it = core.chars();
    if let (Some(c), None) = (it.next(), it.next()) {
        if is_letter(c) {
            return Some(c);
        }
    }
    // "answer is (C)", "Answer: C".
    for pat in ["answer is", "answer:"] {
        if let Some(rest) = after_last(text, pat) {
            let r = rest.trim_start_matches([' ', '*', '$', ':', '(']);
            let mut it = r.chars();
            if let Some(c) = it.next() {
                if is_letter(c) && it.next().is_none_or(|d| !d.is_ascii_alphanumeric()) {
                    return Some(c);
                }
            }
        }
    }
    // The last "(C)".
    let cs: Vec<char> = text.chars().collect();
    (0..cs.len().saturating_sub(2))
        .rev()
        .find(|&i| cs[i] == '(' && is_letter(cs[i + 1]) && cs[i + 2] == ')')
        .map(|i| cs[i + 1])
}

fn choice_letter_string(text: &str) -> Option<String> {
    choice_letter(text).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed() {
        assert_eq!(
            extract_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}}"),
            Some(r"\frac{1}{2}".into())
        );
        assert_eq!(extract_boxed(r"\boxed{\{1,2\}}"), Some(r"\{1,2\}".into()));
        assert_eq!(
            extract_boxed(r"\boxed{\left\{ x \right.}"),
            Some(r"\left\{ x \right.".into())
        );
        assert_eq!(extract_boxed(r"\fbox{7}"), Some("7".into()));
        assert_eq!(extract_boxed(r"\boxed 5$"), Some("5".into()));
        assert_eq!(extract_boxed(r"\boxed{1} and \boxed{2"), None);
        assert_eq!(extract_boxed("no answer"), None);
    }

    #[test]
    fn fallbacks() {
        let all = ExtractOptions::all();
        assert_eq!(
            extract_answer("So the answer is $12$.", &all),
            Some("12".into())
        );
        assert_eq!(
            extract_answer("So the answer is 3.5.", &all),
            Some("3.5".into())
        );
        assert_eq!(
            extract_answer(
                "Final Answer: The final answer is $28 \\%$. I hope it is correct.",
                &all
            ),
            Some("28 \\%".into())
        );
        assert_eq!(extract_answer("I pick (C).", &all), Some("C".into()));
        assert_eq!(
            extract_answer("So the answer is 12", &ExtractOptions::default()),
            None
        );
    }
}
