//! The Solver's reward: `0.9 · accuracy + 0.1 · format` (R-Zero
//! `examples/reward_function/math.py`, `compute_score` with `format_weight=0.1`).
//!
//! As the reference does, the response is first normalised with
//! `re.sub(r"\s*(<|>|/)\s*", r"\1", predict)` (whitespace around `<`, `>` and `/` removed;
//! Python's `\s` is [`crate::bleu::is_py_whitespace`]), then
//! - **format** = 1 when the whole text matches `<think>.*</think>.*\\boxed\{.*\}.*`
//!   (DOTALL, `re.fullmatch`): it starts with `<think>`, a later `</think>` is followed by
//!   `\boxed{`, which is followed by some `}`;
//! - **accuracy** = 1 when the last `\boxed{}` ([`grade::extract_boxed`]) is equivalent to
//!   the label ([`grade::equivalent`]).
//!
//! Departure (`docs/method.md`): without `\boxed{}` there is no answer and accuracy is 0
//! (the reference grades the string `"None"`).

use serde::{Deserialize, Serialize};

use crate::bleu::is_py_whitespace;

/// Weights of the Solver reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolverRewardConfig {
    /// Weight of accuracy. Default 0.9 (`1 - format_weight` in the reference).
    pub accuracy_weight: f64,
    /// Weight of the format check. Default 0.1 (`format_weight=0.1`).
    pub format_weight: f64,
}

impl Default for SolverRewardConfig {
    fn default() -> Self {
        Self {
            accuracy_weight: 0.9,
            format_weight: 0.1,
        }
    }
}

/// One response's reward and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SolverReward {
    /// `accuracy_weight · accuracy + format_weight · format`.
    pub total: f64,
    /// 1 when the boxed answer is equivalent to the label, else 0.
    pub accuracy: f64,
    /// 1 when the response has the `<think>…</think> … \boxed{…}` shape, else 0.
    pub format: f64,
}

impl SolverRewardConfig {
    /// The reward of `response` against the pseudo-label `label`.
    pub fn reward(&self, response: &str, label: &str) -> SolverReward {
        self.reward_with(response, label, grade::extract_boxed, grade::equivalent)
    }

    /// [`Self::reward`] with caller-supplied extraction and equivalence.
    pub fn reward_with(
        &self,
        response: &str,
        label: &str,
        extract: impl Fn(&str) -> Option<String>,
        equivalent: impl Fn(&str, &str) -> bool,
    ) -> SolverReward {
        let text = squeeze_tag_spacing(response);
        let format = if format_ok_normalised(&text) {
            1.0
        } else {
            0.0
        };
        let accuracy = match extract(&text) {
            Some(answer) if equivalent(&answer, label) => 1.0,
            _ => 0.0,
        };
        SolverReward {
            total: self.accuracy_weight * accuracy + self.format_weight * format,
            accuracy,
            format,
        }
    }
}

/// [`SolverRewardConfig::reward`] with the default weights (0.9 / 0.1).
pub fn solver_reward(response: &str, label: &str) -> SolverReward {
    SolverRewardConfig::default().reward(response, label)
}

/// The reference's `re.sub(r"\s*(<|>|/)\s*", r"\1", text)`.
pub fn squeeze_tag_spacing(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // A whitespace run followed by a delimiter is dropped; otherwise kept.
        let start = i;
        while i < chars.len() && is_py_whitespace(chars[i]) {
            i += 1;
        }
        if i < chars.len() && matches!(chars[i], '<' | '>' | '/') {
            out.push(chars[i]);
            i += 1;
            while i < chars.len() && is_py_whitespace(chars[i]) {
                i += 1;
            }
        } else {
            out.extend(&chars[start..i]);
            if i < chars.len() {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether `response` passes the Solver format check (after [`squeeze_tag_spacing`]).
pub fn solver_format_ok(response: &str) -> bool {
    format_ok_normalised(&squeeze_tag_spacing(response))
}

/// `re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", text, re.DOTALL)`.
fn format_ok_normalised(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("<think>") else {
        return false;
    };
    let Some(close) = rest.find("</think>") else {
        return false;
    };
    let after = &rest[close + "</think>".len()..];
    let Some(b) = after.find("\\boxed{") else {
        return false;
    };
    after[b + "\\boxed{".len()..].contains('}')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Last `\boxed{...}` with balanced braces, for tests independent of `grade` (also
    /// used by the Challenger's tests).
    pub(crate) fn last_boxed(text: &str) -> Option<String> {
        let start = text.rfind("\\boxed{")? + "\\boxed{".len();
        let mut depth = 0i32;
        for (k, c) in text[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => return Some(text[start..start + k].trim().to_string()),
                '}' => depth -= 1,
                _ => {}
            }
        }
        None
    }

    fn eq(a: &str, b: &str) -> bool {
        a.trim() == b.trim()
    }

    fn reward(resp: &str, label: &str) -> SolverReward {
        SolverRewardConfig::default().reward_with(resp, label, last_boxed, eq)
    }

    #[test]
    fn weights_and_parts() {
        let r = reward("<think>2+2</think> The answer is \\boxed{4}.", "4");
        assert_eq!((r.accuracy, r.format, r.total), (1.0, 1.0, 0.9 + 0.1));
        let r = reward("<think>2+2</think> \\boxed{5}", "4");
        assert_eq!((r.accuracy, r.format, r.total), (0.0, 1.0, 0.1));
        let r = reward("The answer is \\boxed{4}", "4");
        assert_eq!((r.accuracy, r.format, r.total), (1.0, 0.0, 0.9));
        let r = reward("<think>no box</think> 4", "4");
        assert_eq!((r.accuracy, r.format, r.total), (0.0, 0.0, 0.0));
        let cfg = SolverRewardConfig {
            accuracy_weight: 1.0,
            format_weight: 0.0,
        };
        let r = cfg.reward_with("<think></think>\\boxed{4}", "4", last_boxed, eq);
        assert_eq!(r.total, 1.0);
    }

    #[test]
    fn format_follows_the_reference_regex() {
        assert!(solver_format_ok("<think></think>\\boxed{}"));
        assert!(solver_format_ok("<think>a\nb</think>\nso\n\\boxed{x}\n."));
        assert!(solver_format_ok("< think >a</ think >\\boxed{1}")); // spacing squeezed
        assert!(!solver_format_ok(" x <think>a</think>\\boxed{1}")); // must start with <think>
        assert!(!solver_format_ok("<think>a\\boxed{1}</think>")); // box before </think>
        assert!(!solver_format_ok("<think>a</think>\\boxed{")); // no closing brace
        assert!(!solver_format_ok("<think>a</think>\\boxed 1"));
        assert!(!solver_format_ok(""));
        // The `}` may come from anywhere after `\boxed{`, as `.*\}` allows.
        assert!(solver_format_ok("<think>a</think>\\boxed{1 \\text{ end}"));
        // `<think>` then `</think>` overlapping is impossible: "<think>/think>" fails.
        assert!(!solver_format_ok("<think>/think>\\boxed{1}"));
    }

    #[test]
    fn squeeze_matches_python_re_sub() {
        // Values from Python: re.sub(r"\s*(<|>|/)\s*", r"\1", s).
        assert_eq!(squeeze_tag_spacing("a < b"), "a<b");
        assert_eq!(squeeze_tag_spacing("1 / 2 and  x"), "1/2 and  x");
        assert_eq!(squeeze_tag_spacing("  </ think >  end"), "</think>end");
        assert_eq!(squeeze_tag_spacing("x\u{a0}/\u{1f}y"), "x/y");
        assert_eq!(squeeze_tag_spacing("a b  "), "a b  ");
        assert_eq!(squeeze_tag_spacing("//"), "//");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: SolverRewardConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            c,
            SolverRewardConfig {
                accuracy_weight: 0.9,
                format_weight: 0.1
            }
        );
        assert!(serde_json::from_str::<SolverRewardConfig>(r#"{"format": 1}"#).is_err());
    }
}
