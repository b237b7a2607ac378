//! Which `\boxed{}` of a response is the answer in benchmark evaluation ([`AnswerRule`]).
//!
//! - [`AnswerRule::LastBoxed`]: the last `\boxed{}` / `\fbox{}` ([`crate::extract_boxed`]),
//!   as the training rewards and the dataset stage read answers.
//! - [`AnswerRule::FirstBoxed`]: the reference's evaluation (`evaluation/datasets_loader.py`,
//!   `ANSWER_PATTERN_BOXED = r"(?i)\\boxed\s*{([^\n]+)}"` with `re.search`):
//!   [`extract_first_boxed`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::normalize::matching_brace;

/// How benchmark evaluation takes the answer out of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerRule {
    /// The first `\boxed{...}` that closes on its own line: the reference's
    /// `evaluation/datasets_loader.py` ([`extract_first_boxed`]).
    FirstBoxed,
    /// The last `\boxed{...}` or `\fbox{...}` anywhere ([`crate::extract_boxed`]).
    #[default]
    LastBoxed,
}

impl AnswerRule {
    /// Every rule, in the order of [`AnswerRule::name`]'s documentation.
    pub const ALL: [AnswerRule; 2] = [AnswerRule::FirstBoxed, AnswerRule::LastBoxed];

    /// The rule's name in configs and on the command line: `first-boxed` or `last-boxed`.
    pub fn name(self) -> &'static str {
        match self {
            AnswerRule::FirstBoxed => "first-boxed",
            AnswerRule::LastBoxed => "last-boxed",
        }
    }

    /// The answer of `response` under this rule (`None`: no answer).
    pub fn extract(self, response: &str) -> Option<String> {
        match self {
            AnswerRule::FirstBoxed => extract_first_boxed(response),
            AnswerRule::LastBoxed => crate::extract_boxed(response),
        }
    }
}

impl fmt::Display for AnswerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AnswerRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnswerRule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown answer rule {s:?} (valid: first-boxed, last-boxed)"))
    }
}

/// Whether `t[i..]` starts with `\boxed`, ASCII case-insensitively (the reference's `(?i)`).
fn boxed_at(t: &[u8], i: usize) -> bool {
    t.len() >= i + 6 && t[i] == b'\\' && t[i + 1..i + 6].eq_ignore_ascii_case(b"boxed")
}

/// The answer as the reference's evaluation reads it: `re.search(r"(?i)\\boxed\s*{([^\n]+)}")`.
///
/// The regex takes the first `\boxed` (any case), optional whitespace, `{`, such that a `}`
/// follows later on the same line after at least one character; its group runs to the
/// *last* `}` of that line, and `math_verify.parse` then reads the first expression of it,
/// which is the first box's content. So this returns the brace-matched content of that
/// first box when it closes on its line, and otherwise the regex's group (to the line's last
/// `}`), as the reference would grade it. A `\boxed` whose line has no later `}` is skipped,
/// as the regex skips it. `\fbox` and `\boxed 5` (no braces) are not answers here.
///
/// Linear in the length of `text`.
///
/// ```
/// use grade::extract_first_boxed as f;
/// assert_eq!(f(r"so \boxed{3}, or \boxed{4}").as_deref(), Some("3"));
/// assert_eq!(f("\\boxed{\n3}\nlater \\boxed{4}").as_deref(), Some("4"));
/// assert_eq!(f(r"\BOXED {7}").as_deref(), Some("7"));
/// assert_eq!(f(r"\fbox{7}"), None);
/// ```
pub fn extract_first_boxed(text: &str) -> Option<String> {
    let t = text.as_bytes();
    // The line of the last `{` examined: (its end, its last `}`). `{` positions only grow,
    // so each line is scanned once.
    let mut line: Option<(usize, Option<usize>)> = None;
    let mut i = 0;
    while i < t.len() {
        if !boxed_at(t, i) {
            i += 1;
            continue;
        }
        let after = i + 6;
        // `\s*`: any whitespace, newlines included.
        let rest = &text[after..];
        let open = after + (rest.len() - rest.trim_start().len());
        i = after;
        if t.get(open) != Some(&b'{') {
            continue;
        }
        let (end, last) = match line {
            Some(l) if open < l.0 => l,
            _ => {
                let end = text[open..].find('\n').map_or(t.len(), |k| open + k);
                let l = (end, text[open..end].rfind('}').map(|k| open + k));
                line = Some(l);
                l
            }
        };
        // `[^\n]+}`: at least one character between `{` and the line's last `}`.
        let Some(close) = last.filter(|&c| c > open + 1) else {
            continue;
        };
        let cs: Vec<char> = text[open..end].chars().collect();
        if let Some(e) = matching_brace(&cs, 0) {
            let inner: String = cs[1..e].iter().collect();
            return Some(inner.trim().to_string());
        }
        return Some(text[open + 1..close].trim().to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in AnswerRule::ALL {
            assert_eq!(r.name().parse::<AnswerRule>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.name())
            );
        }
        assert!("first".parse::<AnswerRule>().is_err());
        assert_eq!(AnswerRule::default(), AnswerRule::LastBoxed);
    }
}
