/*!
Math answer toolkit: extraction of final answers from model output and a bounded,
total equivalence test between two answers.

The entry points are [`extract_boxed`], [`extract_answer`], [`extract_free`]
(free-text responses; [`ExtractMode`] names the three ways), [`equivalent`] and
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
assert_eq!(grade::extract_free("So the answer is $x = 3$."), Some("x = 3".to_string()));
assert!(grade::equivalent(r"\frac{1}{3}", "0.333")); // the reference's precision decides
```
*/
#![deny(missing_docs)]

mod answer;
pub mod bbeh;
mod expr;
mod extract;
mod free;
pub mod mmlu_pro;
mod mode;
mod normalize;
mod num;
mod py;
mod rule;
pub mod solution;

#[cfg(test)]
#[path = "../tests/unit/bounds.rs"]
mod bounds_tests; // counts the evaluator's work (crate-internal), so a unit test

use std::collections::HashMap;

pub use extract::{extract_answer, extract_boxed, ExtractOptions};
pub use free::extract_free;
pub use mode::ExtractMode;
pub use rule::{extract_first_boxed, AnswerRule};

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
    /// An extraction mode name other than `boxed`, `fallbacks` or `free`.
    #[error("unknown extraction mode `{0}` (want boxed, fallbacks or free)")]
    UnknownMode(String),
}

/// Result alias of the grade crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An answer prepared for comparison.
struct Prepared {
    compact: String,
    ans: Option<answer::Ans>,
    /// Whether the answer writes a decimal number (`0.333`): as a reference, its
    /// precision then decides (rounding rule of [`equivalent`]).
    decimals: bool,
}

/// Whether `s` has a digit, a point and a digit in a row (or starts with `.5`).
fn has_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'.'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && (i == 0 || b[i - 1].is_ascii_digit() || !b[i - 1].is_ascii_alphanumeric())
    })
}

fn prepare(s: &str) -> Prepared {
    let t = s.trim();
    if t.len() > MAX_ANSWER_LEN {
        return Prepared {
            compact: t.to_string(),
            ans: None,
            decimals: false,
        };
    }
    let n = normalize::normalize(t);
    let compact: String = n.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Prepared {
            compact,
            ans: None,
            decimals: false,
        };
    }
    let ans = answer::parse(&n);
    let decimals = has_decimal(&compact);
    Prepared {
        compact,
        ans: Some(ans),
        decimals,
    }
}

/// Symmetric equivalence; with `rounding`, the rounding rule applies too.
fn prepared_eq_with(a: &Prepared, b: &Prepared, rounding: bool) -> bool {
    if a.compact.is_empty() || b.compact.is_empty() {
        return false;
    }
    if a.compact == b.compact || decimal_comma_eq(&a.compact, &b.compact) {
        return true;
    }
    match (&a.ans, &b.ans) {
        (Some(x), Some(y)) => {
            let mut bud = expr::Budget::new(BUDGET);
            bud.rounding = rounding;
            answer::eq(x, y, &mut bud)
        }
        _ => false,
    }
}

/// `1000,99` and `1000.99`: one side writes the other's decimal point as a comma
/// (digits only, one separator). A list `1,22` is read as a decimal only against the
/// decimal `1.22` itself.
fn decimal_comma_eq(a: &str, b: &str) -> bool {
    let digits_with = |s: &str, sep: char| {
        let s = s.strip_prefix('-').unwrap_or(s);
        s.matches(sep).count() == 1
            && s.chars().all(|c| c.is_ascii_digit() || c == sep)
            && !s.starts_with(sep)
            && !s.ends_with(sep)
    };
    a.len() == b.len()
        && ((digits_with(a, ',') && digits_with(b, '.') && a.replace(',', ".") == b)
            || (digits_with(a, '.') && digits_with(b, ',') && b.replace(',', ".") == a))
}

fn prepared_eq(a: &Prepared, b: &Prepared) -> bool {
    prepared_eq_with(a, b, false)
}

/// Whether `answer` denotes the same mathematical object as `reference`; an empty
/// answer equals nothing.
///
/// Symmetric except for one rule: when the reference is written with decimals, its
/// precision decides. A decimal of 1 to 9 places then also equals a value that is not a
/// terminating decimal (`1/3`, `\sqrt{2}`, `\pi`, a printed float) and rounds to it
/// (within half a unit of its last place): `equivalent("1/3", "0.333")` holds, while
/// `equivalent("0.333", "1/3")` (an approximate answer to an exact reference) and
/// `equivalent("2.46", "2.5")` (two exact decimals) do not. [`group_answers`] uses the
/// symmetric relation without this rule.
pub fn equivalent(answer: &str, reference: &str) -> bool {
    let (a, r) = (prepare(answer), prepare(reference));
    prepared_eq_with(&a, &r, r.decimals)
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
