//! Structured answers: a normalised answer string parsed into [`Ans`] (number or
//! expression, tuple, interval, set, list, union, matrix, assignment `x = …`,
//! equation, inequality, choice letter, text) and the equivalence between two of them.//!
//! `scan` (brackets, separators, units, text and choice rules) → `parse` (the
//! structure) → `compare` (equivalence and keys).

mod compare;
mod parse;
mod scan;

pub use compare::{eq, key};
pub use parse::parse;

use crate::expr::Expr;

/// Deepest structural nesting followed (lists of tuples of ...).
const MAX_NEST: usize = 6;

/// Normalised inequality operator (`>`/`≥` are stored swapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IneqOp {
    /// `<`
    Lt,
    /// `≤`
    Le,
    /// `≠`
    Ne,
}

/// An interval `lo..hi` with its closedness.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    lo: Expr,
    hi: Expr,
    lo_closed: bool,
    hi_closed: bool,
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Ans {
    /// A number or expression; `pct` when written as a percentage.
    Expr { e: Expr, pct: bool },
    /// `(a, b, ...)`: ordered.
    Tuple(Vec<Ans>),
    /// `[a, b)` and friends.
    Interval(Interval),
    /// `\{a, b\}` or the values of a `±`: unordered.
    Set(Vec<Ans>),
    /// `a, b` / `a and b`: unordered.
    List(Vec<Ans>),
    /// `A \cup B`.
    Union(Vec<Ans>),
    /// Rows of a matrix.
    Matrix(Vec<Vec<Ans>>),
    /// `x = v` (a name on the left) or a chain `a = b = v`: the value `v` counts.
    Assign {
        value: Box<Ans>,
        eq: Option<(Expr, Expr)>,
    },
    /// `l = r` with a non-name left side.
    Equation(Expr, Expr),
    /// `f op 0` with `f = lhs - rhs`; `interval` when one side is a lone variable.
    Ineq {
        f: Expr,
        op: IneqOp,
        interval: Option<Interval>,
    },
    /// A multiple-choice letter.
    Choice(char),
    /// Anything else, compared as normalised text.
    Text(String),
}
