//! Forced final answers ("budget forcing", s1, arXiv 2501.19393): a generation option for
//! small models that rarely close their answer in a `\boxed{}`.
//!
//! When a completion ends (EOS, stop token id or the token limit) and its text has no closed
//! box (`grade::extract_boxed`), the engine appends a fixed cue (by default
//! `"\n\nFinal answer: \boxed{"`) and continues **the same sequence** — same KV cache, same
//! sampling parameters, same RNG stream — for at most [`ForceAnswer::max_tokens`] tokens,
//! until the braces the cue opened are balanced. If they are still open after that many
//! tokens, closing `}` tokens are appended too, so every forced completion ends with a closed
//! box. A completion that ended on an EOS / stop id loses that token: the cue takes its place.
//! A completion that ended on a stop *string* is not forced (the caller asked it to end there).
//!
//! The forced text is part of the completion (token ids, text, log-probs);
//! [`crate::Completion::forced`] marks the tokens the engine wrote (the cue and any closing
//! braces) as opposed to the tokens the model sampled (its answer after the cue). Training
//! gives forced tokens no gradient.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::FinishReason;
use crate::stop::Detokenize;

/// The default cue.
pub const DEFAULT_CUE: &str = "\n\nFinal answer: \\boxed{";

/// The default answer budget after the cue.
pub const DEFAULT_MAX_TOKENS: usize = 16;

/// How to force a final answer (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForceAnswer {
    /// Text appended to a completion without a closed `\boxed{}`; it must leave at least one
    /// brace open (the box the model then fills).
    pub cue: String,
    /// Most tokens the model writes after the cue before its box is closed for it.
    pub max_tokens: usize,
}

impl Default for ForceAnswer {
    fn default() -> Self {
        Self {
            cue: DEFAULT_CUE.into(),
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl ForceAnswer {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_tokens == 0 {
            return Err("force_answer.max_tokens must be at least 1".into());
        }
        if open_braces(&self.cue) == 0 {
            return Err(format!(
                "force_answer.cue {:?} must leave a brace open (e.g. end with \\boxed{{)",
                self.cue
            ));
        }
        Ok(())
    }
}

/// Braces left open at the end of `text`, counted as `grade` matches them (a backslash
/// escapes the next character; a `}` with nothing open is ignored).
pub fn open_braces(text: &str) -> usize {
    let mut depth = 0usize;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

/// Where a free-running answer after `cue` closes the cue's box: the bytes of `answer` to
/// keep (through the brace that balances the cue's) and the `}`s still to append (0 when it
/// closed). What a client does with a server that cannot force answers itself.
pub fn close_answer(cue: &str, answer: &str) -> (usize, usize) {
    let mut depth = open_braces(cue);
    let mut escaped = false;
    for (i, c) in answer.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return (i + 1, 0);
                }
            }
            _ => {}
        }
    }
    (answer.len(), depth.max(1))
}

/// Whether `text` has a closed box (the grade crate's extraction finds one).
pub fn has_closed_box(text: &str) -> bool {
    grade::extract_boxed(text).is_some()
}

/// A request's forcing, tokenized once.
#[derive(Debug, Clone)]
pub(crate) struct ForcePlan {
    pub cue_ids: Vec<u32>,
    /// The ids of one `}`.
    pub close_ids: Vec<u32>,
    pub max_tokens: usize,
}

impl ForcePlan {
    pub fn new<D: Detokenize + ?Sized>(detok: &D, f: &ForceAnswer) -> Result<Self> {
        let cue_ids = detok.encode(&f.cue)?;
        let close_ids = detok.encode("}")?;
        if cue_ids.is_empty() || close_ids.is_empty() {
            return Err(Error::Decode(format!(
                "the force_answer cue {:?} or \"}}\" encodes to no token",
                f.cue
            )));
        }
        Ok(Self {
            cue_ids,
            close_ids,
            max_tokens: f.max_tokens,
        })
    }

    /// Most tokens forcing can add after the limit: the cue, the answer and the closing
    /// braces (one per answer token plus the cue's, the most that can be open).
    pub fn extra_tokens(&self) -> usize {
        self.cue_ids.len() + self.max_tokens + (self.max_tokens + 1) * self.close_ids.len()
    }
}

/// One completion's forced phase.
#[derive(Debug, Clone)]
pub(crate) struct ForceState {
    /// Forced tokens still to append (the cue, then closing braces).
    pub queue: VecDeque<u32>,
    /// Index in the generated ids where the cue starts.
    pub cue_at: usize,
    /// Tokens the model sampled after the cue.
    pub answered: usize,
    /// The queue holds the closing braces: the completion ends when it is empty.
    pub closing: bool,
    /// Why the completion first ended.
    pub reason: FinishReason,
    /// Per generated token: written by the engine.
    pub forced: Vec<bool>,
}

impl ForceState {
    pub fn start(plan: &ForcePlan, generated: usize, reason: FinishReason) -> Self {
        Self {
            queue: plan.cue_ids.iter().copied().collect(),
            cue_at: generated,
            answered: 0,
            closing: false,
            reason,
            forced: vec![false; generated],
        }
    }

    /// Queues the `}`s that close `depth` open braces (at least one).
    pub fn close(&mut self, plan: &ForcePlan, depth: usize) {
        for _ in 0..depth.clamp(1, plan.max_tokens + 1) {
            self.queue.extend(&plan.close_ids);
        }
        self.closing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_depth_follows_grade() {
        assert_eq!(open_braces(DEFAULT_CUE), 1);
        assert_eq!(open_braces("\\boxed{\\frac{1}{2"), 2);
        assert_eq!(open_braces("\\boxed{\\{x\\}"), 1);
        assert_eq!(open_braces("\\boxed{5}}"), 0);
        assert!(has_closed_box("so \\boxed{5}."));
        assert!(!has_closed_box("so \\boxed{5"));
        assert!(ForceAnswer::default().validate().is_ok());
        assert_eq!(close_answer(DEFAULT_CUE, "42} and more"), (3, 0));
        assert_eq!(close_answer(DEFAULT_CUE, "\\frac{1}{2}}."), (12, 0));
        assert_eq!(close_answer(DEFAULT_CUE, "\\frac{1"), (7, 2));
        assert_eq!(close_answer(DEFAULT_CUE, "x \\} y"), (6, 1));
        let bad = ForceAnswer {
            cue: "Final answer:".into(),
            ..ForceAnswer::default()
        };
        assert!(bad.validate().unwrap_err().contains("brace"));
    }
}
