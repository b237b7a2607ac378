//! Equivalence of two parsed answers, and canonical keys for grouping.

use super::parse::neg;
use super::{Ans, IneqOp, Interval};
use crate::expr::{self, Budget, Expr};
use crate::num::Q;

fn expr_eq(a: &Expr, pa: bool, b: &Expr, pb: bool, bud: &mut Budget) -> bool {
    if pa == pb {
        return expr::equal(a, b, bud);
    }
    let (p, q) = if pa { (a, b) } else { (b, a) };
    expr::equal(p, q, bud)
        || expr::equal(
            &Expr::Div(Box::new(p.clone()), Box::new(Expr::Num(Q::int(100)))),
            q,
            bud,
        )
}

fn interval_eq(x: &Interval, y: &Interval, bud: &mut Budget) -> bool {
    x.lo_closed == y.lo_closed
        && x.hi_closed == y.hi_closed
        && expr::equal(&x.lo, &y.lo, bud)
        && expr::equal(&x.hi, &y.hi, bud)
}

fn ordered_eq(x: &[Ans], y: &[Ans], bud: &mut Budget) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq(a, b, bud))
}

/// Set equality: every element of each side equals some element of the other.
fn set_eq(x: &[Ans], y: &[Ans], bud: &mut Budget) -> bool {
    if x.is_empty() || y.is_empty() {
        return x.is_empty() && y.is_empty();
    }
    if !bud.charge((x.len() * y.len()) as u64) {
        return false;
    }
    let covers =
        |x: &[Ans], y: &[Ans], bud: &mut Budget| x.iter().all(|a| y.iter().any(|b| eq(a, b, bud)));
    covers(x, y, bud) && covers(y, x, bud)
}

fn elems(a: &Ans) -> Option<&[Ans]> {
    match a {
        Ans::Set(v) | Ans::List(v) | Ans::Union(v) => Some(v),
        _ => None,
    }
}

fn flat_vector(m: &[Vec<Ans>]) -> Option<Vec<Ans>> {
    if m.len() == 1 {
        return Some(m[0].clone());
    }
    if m.iter().all(|r| r.len() == 1) {
        return Some(m.iter().map(|r| r[0].clone()).collect());
    }
    None
}

/// Whether two parsed answers are equivalent.
pub fn eq(a: &Ans, b: &Ans, bud: &mut Budget) -> bool {
    if !bud.charge(1) {
        return false;
    }
    use Ans::*;
    match (a, b) {
        (Expr { e: x, pct: p }, Expr { e: y, pct: q }) => expr_eq(x, *p, y, *q, bud),
        (Assign { value: va, eq: ea }, Assign { value: vb, eq: eb }) => {
            eq(va, vb, bud)
                || matches!((ea, eb), (Some((l1, r1)), Some((l2, r2))) if equation_eq(l1, r1, l2, r2, bud))
        }
        (
            Assign {
                eq: Some((l1, r1)), ..
            },
            Equation(l2, r2),
        )
        | (
            Equation(l2, r2),
            Assign {
                eq: Some((l1, r1)), ..
            },
        ) => equation_eq(l1, r1, l2, r2, bud),
        (Assign { value, .. }, other) | (other, Assign { value, .. }) => {
            !matches!(other, Equation(..)) && eq(value, other, bud)
        }
        (Equation(l1, r1), Equation(l2, r2)) => equation_eq(l1, r1, l2, r2, bud),
        (
            Ineq {
                f: f1,
                op: o1,
                interval: i1,
            },
            Ineq {
                f: f2,
                op: o2,
                interval: i2,
            },
        ) => {
            (o1 == o2 && expr::proportional(f1, f2, *o1 != IneqOp::Ne, bud))
                || matches!((i1, i2), (Some(x), Some(y)) if interval_eq(x, y, bud))
        }
        (
            Ineq {
                interval: Some(i), ..
            },
            other,
        )
        | (
            other,
            Ineq {
                interval: Some(i), ..
            },
        ) => match other {
            Interval(j) => interval_eq(i, j, bud),
            Tuple(v) => tuple_interval(v, i, bud),
            _ => false,
        },
        (Interval(x), Interval(y)) => interval_eq(x, y, bud),
        (Interval(i), Tuple(v)) | (Tuple(v), Interval(i)) => tuple_interval(v, i, bud),
        (Tuple(x), Tuple(y)) => ordered_eq(x, y, bud),
        (Matrix(x), Matrix(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(r, s)| ordered_eq(r, s, bud))
        }
        (Matrix(m), Tuple(v)) | (Tuple(v), Matrix(m)) => {
            flat_vector(m).is_some_and(|f| ordered_eq(&f, v, bud))
        }
        (Tuple(v), other) | (other, Tuple(v)) if elems(other).is_some() => {
            elems(other).is_some_and(|w| ordered_eq(v, w, bud))
        }
        (x, y) if elems(x).is_some() && elems(y).is_some() => match (elems(x), elems(y)) {
            (Some(p), Some(q)) => set_eq(p, q, bud),
            _ => false,
        },
        (x, single) | (single, x) if elems(x).is_some() => {
            elems(x).is_some_and(|v| !v.is_empty() && v.iter().all(|e| eq(e, single, bud)))
        }
        (Choice(x), Choice(y)) => x == y,
        (Text(x), Text(y)) => x == y,
        _ => false,
    }
}

fn tuple_interval(v: &[Ans], i: &Interval, bud: &mut Budget) -> bool {
    if i.lo_closed || i.hi_closed || v.len() != 2 {
        return false;
    }
    match (&v[0], &v[1]) {
        (Ans::Expr { e: a, pct: false }, Ans::Expr { e: b, pct: false }) => {
            expr::equal(a, &i.lo, bud) && expr::equal(b, &i.hi, bud)
        }
        _ => false,
    }
}

fn equation_eq(l1: &Expr, r1: &Expr, l2: &Expr, r2: &Expr, bud: &mut Budget) -> bool {
    let f = Expr::Add(vec![l1.clone(), neg(r1.clone())]);
    let g = Expr::Add(vec![l2.clone(), neg(r2.clone())]);
    (expr::equal(l1, l2, bud) && expr::equal(r1, r2, bud)) || expr::proportional(&f, &g, false, bud)
}

/// A canonical key when equality of keys is exactly equivalence (exact rationals,
/// choice letters, text); `None` otherwise.
pub fn key(a: &Ans) -> Option<String> {
    match a {
        Ans::Expr { e, pct: false } => expr::exact(e).map(|q| format!("q{}/{}", q.n, q.d)),
        Ans::Choice(c) => Some(format!("c{c}")),
        Ans::Text(t) => Some(format!("t{t}")),
        _ => None,
    }
}
