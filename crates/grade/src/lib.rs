/*!
Math answer toolkit: extraction of final answers from model output and a bounded,
total equivalence test between two answers.

The entry points are [`extract_boxed`], [`extract_answer`], [`equivalent`] and
[`group_answers`]. Every function is total (never panics) and does bounded work:
inputs longer than [`MAX_ANSWER_LEN`] are compared as plain strings, expressions are
parsed under a token and depth limit, and every comparison runs on a fixed work budget.

Equivalence is decided by normalising both answers (LaTeX layout, `\text{}`, units,
percent, degrees, thousands separators), parsing them into a structure (number or
expression, tuple, interval, set, list, union, matrix, `x = …`, equation, inequality,
choice letter, text), and comparing structures: numbers exactly as rationals when
possible, expressions numerically at fixed pseudo-random points (fixed seed).

```
assert_eq!(grade::extract_boxed(r"so \boxed{\frac{1}{2}}."), Some(r"\frac{1}{2}".to_string()));
assert!(grade::equivalent(r"\frac{1}{2}", "0.5"));
assert!(grade::equivalent(r"(x-2)(x+2)", "x^2-4"));
assert!(!grade::equivalent("[0,1)", "(0,1)"));
```
*/
#![deny(missing_docs)]

mod answer;
pub mod bbeh;
mod expr;
mod extract;
pub mod mmlu_pro;
mod normalize;
mod num;
mod py;
pub mod solution;

use std::collections::HashMap;

pub use extract::{extract_answer, extract_boxed, ExtractOptions};

/// Longest answer (in bytes) that is parsed; longer ones are compared as strings.
pub const MAX_ANSWER_LEN: usize = 2000;

/// Work units one comparison may spend (about one node evaluation each).
const BUDGET: u64 = 400_000;

/// Errors of the grade crate (reserved; the public functions are total).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is longer than the grader accepts.
    #[error("input of {len} bytes is longer than the limit of {limit}")]
    TooLong {
        /// Input length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

/// Result alias of the grade crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An answer prepared for comparison.
struct Prepared {
    compact: String,
    ans: Option<answer::Ans>,
}

fn prepare(s: &str) -> Prepared {
    let t = s.trim();
    if t.len() > MAX_ANSWER_LEN {
        return Prepared {
            compact: t.to_string(),
            ans: None,
        };
    }
    let n = normalize::normalize(t);
    let compact: String = n.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Prepared { compact, ans: None };
    }
    let ans = answer::parse(&n);
    Prepared {
        compact,
        ans: Some(ans),
    }
}

fn prepared_eq(a: &Prepared, b: &Prepared) -> bool {
    if a.compact.is_empty() || b.compact.is_empty() {
        return false;
    }
    if a.compact == b.compact {
        return true;
    }
    match (&a.ans, &b.ans) {
        (Some(x), Some(y)) => answer::eq(x, y, &mut expr::Budget::new(BUDGET)),
        _ => false,
    }
}

/// Whether two answers denote the same mathematical object. Symmetric; an empty
/// answer equals nothing.
pub fn equivalent(a: &str, b: &str) -> bool {
    prepared_eq(&prepare(a), &prepare(b))
}

/// Groups answers into equivalence classes: each class lists input indices in input
/// order, and classes are ordered by their first member.
///
/// Answers with a canonical key (exact rational value, choice letter, text) are
/// grouped through a hash map; the others are compared with class representatives.
pub fn group_answers(answers: &[String]) -> Vec<Vec<usize>> {
    let prepared: Vec<Prepared> = answers.iter().map(|a| prepare(a)).collect();
    let keys: Vec<Option<String>> = prepared
        .iter()
        .map(|p| p.ans.as_ref().and_then(answer::key))
        .collect();
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    // Classes whose representative has no key: every newcomer is compared with them.
    let mut keyless: Vec<usize> = Vec::new();
    for i in 0..answers.len() {
        if let Some(k) = &keys[i] {
            if let Some(&c) = by_key.get(k.as_str()) {
                classes[c].push(i);
                continue;
            }
        }
        let candidates: Vec<usize> = if keys[i].is_some() {
            keyless.clone()
        } else {
            (0..classes.len()).collect()
        };
        if let Some(c) = candidates
            .into_iter()
            .find(|&c| prepared_eq(&prepared[classes[c][0]], &prepared[i]))
        {
            classes[c].push(i);
            if let Some(k) = &keys[i] {
                by_key.insert(k.as_str(), c);
            }
            continue;
        }
        let c = classes.len();
        classes.push(vec![i]);
        match &keys[i] {
            Some(k) => {
                by_key.insert(k.as_str(), c);
            }
            None => keyless.push(c),
        }
    }
    classes
}
