//! Equality of expressions: exactly as rationals, else at fixed pseudo-random points.

use std::collections::BTreeSet;

use super::tree::{has_inf, size, vars};
use super::{eval, exact, Budget, Expr};
use crate::num::{close, C, Q};

/// Number of evaluation points for symbolic comparison.
const POINTS: u64 = 6;
/// Fixed seed of the evaluation points (results are reproducible).
const SEED: u64 = 0x05ee_d0f7_2e70;

/// Decimal places of a reduced denominator of the form 2^a 5^b (`max(a, b)`).
fn decimal_places(mut d: i128) -> Option<u32> {
    let (mut a, mut b) = (0u32, 0u32);
    while d > 1 && d % 2 == 0 {
        d /= 2;
        a += 1;
    }
    while d > 1 && d % 5 == 0 {
        d /= 5;
        b += 1;
    }
    (d == 1).then_some(a.max(b))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The value of variable `name` at evaluation point `p`: depends only on the name,
/// the point and the fixed seed.
fn point_value(name: &str, p: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let r = splitmix(SEED ^ h ^ splitmix(p));
    // In [0.35, 2.35): positive, away from 0 and 1, different per variable.
    0.35 + (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0
}

fn env_at(names: &BTreeSet<String>, p: u64) -> Vec<(String, C)> {
    names
        .iter()
        .map(|n| (n.clone(), C::r(point_value(n, p))))
        .collect()
}

/// Decimal places of a decimal literal (`0.25`, `-3.5`), `None` for anything else.
fn literal_places(e: &Expr) -> Option<u32> {
    match e {
        Expr::Num(q) => decimal_places(q.d),
        Expr::Neg(inner) => match &**inner {
            Expr::Num(q) => decimal_places(q.d),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `(dec, other)` meet the rounding rule: `dec` is a decimal literal with 1 to 9
/// places, `other` (value `y`) is not a terminating decimal of few places, and `y`
/// rounds to `dec` at `dec`'s precision (half a unit of its last place).
fn rounds_to(dec: &Expr, x: f64, other: &Expr, y: Option<Q>, yv: f64) -> bool {
    let Some(d) = literal_places(dec).filter(|d| (1..=9).contains(d)) else {
        return false;
    };
    // A literal written with 1..=9 places is exact: 2.46 is not 2.5.
    let inexact = match literal_places(other) {
        Some(p) => p >= 10,
        None => y.is_none_or(|q| decimal_places(q.d).is_none_or(|p| p > d)),
    };
    inexact
        && x.is_finite()
        && yv.is_finite()
        && (x - yv).abs() <= 0.5 * 10f64.powi(-(d as i32)) * (1.0 + 1e-9)
}

/// Whether two expressions are equal: exactly when both have rational values, else
/// numerically (tolerance 1e-9 for constants, 1e-7 at six fixed random points).
/// With `budget.rounding`, a short decimal also equals a value that rounds to it.
///
/// Randomized evaluation: every variable takes, at each of [`POINTS`] points, a value
/// in [0.35, 2.35) derived from its name, the point and the fixed [`SEED`] (the result
/// is reproducible). Points where both sides are undefined are skipped; at least 3
/// valid points must agree and none may disagree. False-positive bound: when `a - b` is
/// not zero on the sampled box, a point passes only if it falls where
/// `|a - b| ≤ 1e-7 |a|`; for the smooth expressions that answers are, that set has
/// relative measure of order 1e-7 per sign change of `a - b`, so with ≥ 3 independent
/// points a false "equal" has probability of order 1e-21 or less. Equalities that hold
/// only on the positive box are accepted by design (`\sqrt{x^2}` = `x`, `|x|` = `x`).
pub fn equal(a: &Expr, b: &Expr, budget: &mut Budget) -> bool {
    if a == b {
        return true;
    }
    let cost = size(a) + size(b);
    if !budget.charge(cost) {
        return false;
    }
    let (qa, qb) = (exact(a), exact(b));
    if let (Some(x), Some(y)) = (qa, qb) {
        if x == y {
            return true;
        }
        if budget.rounding
            && (rounds_to(a, x.to_f64(), b, Some(y), y.to_f64())
                || rounds_to(b, y.to_f64(), a, Some(x), x.to_f64()))
        {
            return true;
        }
        // A long decimal (10+ places) is a printed float: it matches a value that it
        // rounds, within one unit of its second-to-last place.
        let k = match (literal_places(a), literal_places(b)) {
            (Some(p), Some(q)) => p.min(q),
            (Some(p), None) | (None, Some(p)) => p,
            _ => return false,
        };
        return k >= 10 && (x.to_f64() - y.to_f64()).abs() <= 10f64.powi(-(k as i32) + 1);
    }
    let mut names = BTreeSet::new();
    vars(a, &mut names);
    vars(b, &mut names);
    if names.is_empty() {
        let (x, y) = (eval(a, &[]), eval(b, &[]));
        let real = |z: C| z.im.abs() <= 1e-12 * z.re.abs().max(1.0);
        if budget.rounding
            && real(x)
            && real(y)
            && (rounds_to(a, x.re, b, qb, y.re) || rounds_to(b, y.re, a, qa, x.re))
        {
            return true;
        }
        // An overflow is no value; only written infinities compare.
        if !x.is_finite() || !y.is_finite() {
            return has_inf(a) && has_inf(b) && close(x, y, 1e-9);
        }
        return close(x, y, 1e-9);
    }
    if names.len() > 12 || !budget.charge(cost * POINTS) {
        return false;
    }
    let mut valid = 0;
    for p in 0..POINTS {
        let env = env_at(&names, p);
        let (x, y) = (eval(a, &env), eval(b, &env));
        match (x.is_finite(), y.is_finite()) {
            (false, false) => continue,
            (true, true) => {
                if !close(x, y, 1e-7) {
                    return false;
                }
                valid += 1;
            }
            _ => return false,
        }
    }
    valid >= 3
}

/// Whether `f = c * g` for a constant `c` (positive when `positive`), checked at the
/// evaluation points; used for equations (`f = 0`) and inequalities (`f < 0`).
pub fn proportional(f: &Expr, g: &Expr, positive: bool, budget: &mut Budget) -> bool {
    let cost = (size(f) + size(g)) * POINTS;
    if !budget.charge(cost) {
        return false;
    }
    let mut names = BTreeSet::new();
    vars(f, &mut names);
    vars(g, &mut names);
    if names.is_empty() || names.len() > 12 {
        return false;
    }
    let mut ratio: Option<C> = None;
    let mut valid = 0;
    for p in 0..POINTS {
        let env = env_at(&names, p);
        let (x, y) = (eval(f, &env), eval(g, &env));
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        let (zx, zy) = (x.abs() < 1e-12, y.abs() < 1e-12);
        if zx && zy {
            continue;
        }
        if zx || zy {
            return false;
        }
        let r = x.div(y);
        match ratio {
            None => ratio = Some(r),
            Some(r0) => {
                if !close(r, r0, 1e-7) {
                    return false;
                }
            }
        }
        valid += 1;
    }
    match ratio {
        Some(r) if valid >= 3 => !positive || (r.im.abs() < 1e-9 * r.abs() && r.re > 0.0),
        _ => false,
    }
}
