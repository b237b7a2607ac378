//! Expressions: a bounded LaTeX/plain-text parser into [`Expr`], exact rational
//! evaluation, numeric (complex) evaluation at fixed pseudo-random points, and the
//! comparisons built on them.
//!
//! Limits: at most [`MAX_TOKENS`] tokens, nesting depth [`MAX_DEPTH`], and every
//! comparison charges a shared [`Budget`]; when a limit is hit the answer is "not
//! parsed" or "not equal", never a hang or a panic.
//!
//! `lexer` (tokens, number literals) → `parser` (recursive descent) → `eval` (exact and
//! numeric values) → `equal` (the comparisons); `tree` walks the tree (size, variables, ±).

mod equal;
mod eval;
mod lexer;
mod parser;
mod tree;

pub use equal::{equal, proportional};
pub use eval::{eval, exact};
pub use lexer::is_word_func;
pub use parser::parse;
pub use tree::{expand_pm, has_pm, vars};

use crate::num::Q;

/// Most tokens an expression may have.
pub const MAX_TOKENS: usize = 1500;
/// Deepest nesting the parser follows.
pub const MAX_DEPTH: usize = 48;

/// Work allowance shared by one comparison.
#[derive(Debug)]
pub struct Budget {
    left: u64,
    /// Whether a short decimal (1 to 9 places) also equals a value that is not a
    /// terminating decimal (`1/3`, `\sqrt 2`, a printed float) and rounds to it: set
    /// when the reference answer is written with decimals, so that its precision
    /// decides (see [`equal`]).
    pub rounding: bool,
}

impl Budget {
    /// A budget of `units` (one unit is about one node evaluation).
    pub fn new(units: u64) -> Budget {
        Budget {
            left: units,
            rounding: false,
        }
    }
    /// Charges `n` units; false once the budget is spent.
    pub fn charge(&mut self, n: u64) -> bool {
        if self.left < n {
            self.left = 0;
            false
        } else {
            self.left -= n;
            true
        }
    }
}

/// Counts one node visited by the evaluator (exactly or numerically); test builds only
/// ([`work::nodes_visited`]).
#[inline]
pub(crate) fn count_node() {
    #[cfg(test)]
    work::NODES.with(|n| n.set(n.get() + 1));
}

#[cfg(test)]
pub(crate) mod work {
    thread_local! {
        pub(super) static NODES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Nodes the evaluator has visited on this thread: the bounds tests hold a comparison's
    /// work to the budget with it, a count that does not depend on the machine.
    pub(crate) fn nodes_visited() -> u64 {
        NODES.with(|n| n.get())
    }
}

/// Elementary functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fun {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Exact number.
    Num(Q),
    /// Inexact number (too many digits for an exact rational).
    Float(f64),
    /// A variable (name includes any subscript).
    Var(String),
    /// π.
    Pi,
    /// Euler's number.
    E,
    /// The imaginary unit.
    I,
    /// Infinity.
    Inf,
    /// Sum.
    Add(Vec<Expr>),
    /// Negation.
    Neg(Box<Expr>),
    /// Product.
    Mul(Vec<Expr>),
    /// Quotient.
    Div(Box<Expr>, Box<Expr>),
    /// Power.
    Pow(Box<Expr>, Box<Expr>),
    /// Function application.
    Func(Fun, Box<Expr>),
    /// Logarithm with base.
    Log(Box<Expr>, Box<Expr>),
    /// k-th root (index, radicand).
    Root(Box<Expr>, Box<Expr>),
    /// Factorial.
    Fact(Box<Expr>),
    /// Binomial coefficient.
    Binom(Box<Expr>, Box<Expr>),
    /// Absolute value.
    Abs(Box<Expr>),
    /// Floor.
    Floor(Box<Expr>),
    /// Ceiling.
    Ceil(Box<Expr>),
    /// `a ± b`.
    Pm(Box<Expr>, Box<Expr>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, b: &str) -> bool {
        let (Some(x), Some(y)) = (parse(a), parse(b)) else {
            return false;
        };
        equal(&x, &y, &mut Budget::new(1_000_000))
    }

    #[test]
    fn parses_latex_numbers() {
        assert_eq!(exact(&parse(r"\frac34").unwrap()), Q::new(3, 4));
        assert_eq!(exact(&parse(r"\frac1{72}").unwrap()), Q::new(1, 72));
        assert_eq!(exact(&parse(r"2\frac{1}{2}").unwrap()), Q::new(5, 2));
        assert_eq!(exact(&parse(r"-2\frac{1}{2}").unwrap()), Q::new(-5, 2));
        assert_eq!(exact(&parse("1.5e-3").unwrap()), Q::new(3, 2000));
        assert_eq!(exact(&parse(r"\sqrt{16}").unwrap()), Q::new(4, 1));
        assert_eq!(exact(&parse(r"\binom{5}{2}").unwrap()), Q::new(10, 1));
        assert_eq!(exact(&parse("2^{10}").unwrap()), Q::new(1024, 1));
    }

    #[test]
    fn symbolic_equalities() {
        assert!(eq(r"\tan^2(y)+1", r"\sec^2(y)"));
        assert!(eq(r"\frac{x+2}{7}", r"\frac{x}{7}+\frac{2}{7}"));
        assert!(eq("(x-2)(x+2)", "x^2-4"));
        assert!(!eq("x+1", "y+1"));
        assert!(!eq(r"1", r"1\sqrt{19}"));
        assert!(eq(r"2\sqrt{2}", r"\sqrt{8}"));
    }

    #[test]
    fn limits_hold() {
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse(&deep).is_none());
        let huge = parse("10^{10^{10}}").unwrap();
        assert!(exact(&huge).is_none());
    }
}
