//! Exact rational and numeric (complex) evaluation.

use super::{Expr, Fun};
use crate::num::{C, Q};

/// Exact rational value, when `e` has one that the evaluator can find.
pub fn exact(e: &Expr) -> Option<Q> {
    super::count_node();
    match e {
        Expr::Num(q) => Some(*q),
        Expr::Add(v) => v.iter().try_fold(Q::int(0), |acc, x| acc.add(exact(x)?)),
        Expr::Mul(v) => v.iter().try_fold(Q::int(1), |acc, x| acc.mul(exact(x)?)),
        Expr::Neg(a) => exact(a)?.neg(),
        Expr::Div(a, b) => exact(a)?.div(exact(b)?),
        Expr::Pow(a, b) => {
            let (a, b) = (exact(a)?, exact(b)?);
            if b.is_int() {
                a.powi(b.n)
            } else if b.d <= 64 {
                a.root(b.d)?.powi(b.n)
            } else {
                None
            }
        }
        Expr::Root(k, a) => {
            let k = exact(k)?;
            if !k.is_int() {
                return None;
            }
            exact(a)?.root(k.n)
        }
        Expr::Fact(a) => {
            let n = exact(a)?;
            if !n.is_int() || !(0..=33).contains(&n.n) {
                return None;
            }
            (1..=n.n).try_fold(Q::int(1), |acc, k| acc.mul(Q::int(k)))
        }
        Expr::Binom(n, k) => {
            let (n, k) = (exact(n)?, exact(k)?);
            if !n.is_int() || !k.is_int() || n.n < 0 || n.n > 200 {
                return None;
            }
            if k.n < 0 || k.n > n.n {
                return Some(Q::int(0));
            }
            let mut acc = Q::int(1);
            for j in 0..k.n {
                acc = acc.mul(Q::int(n.n - j))?.div(Q::int(j + 1))?;
            }
            Some(acc)
        }
        Expr::Abs(a) => {
            let q = exact(a)?;
            if q.n < 0 {
                q.neg()
            } else {
                Some(q)
            }
        }
        Expr::Floor(a) | Expr::Ceil(a) => {
            let q = exact(a)?;
            let fl = q.n.div_euclid(q.d);
            let up = matches!(e, Expr::Ceil(_)) && q.n.rem_euclid(q.d) != 0;
            Some(Q::int(if up { fl + 1 } else { fl }))
        }
        _ => None,
    }
}

fn real_only(z: C, f: impl Fn(f64) -> f64) -> C {
    if z.im.abs() > 1e-12 * z.re.abs().max(1.0) {
        C::nan()
    } else {
        C::r(f(z.re))
    }
}

/// Numeric value with variables bound by `env`.
pub fn eval(e: &Expr, env: &[(String, C)]) -> C {
    super::count_node();
    match e {
        Expr::Num(q) => C::r(q.to_f64()),
        Expr::Float(f) => C::r(*f),
        Expr::Var(v) => env
            .iter()
            .find(|(n, _)| n == v)
            .map(|p| p.1)
            .unwrap_or_else(C::nan),
        Expr::Pi => C::r(std::f64::consts::PI),
        Expr::E => C::r(std::f64::consts::E),
        Expr::I => C { re: 0.0, im: 1.0 },
        Expr::Inf => C::r(f64::INFINITY),
        Expr::Add(v) => v.iter().fold(C::r(0.0), |a, x| a.add(eval(x, env))),
        Expr::Mul(v) => v.iter().fold(C::r(1.0), |a, x| a.mul(eval(x, env))),
        Expr::Neg(a) => eval(a, env).neg(),
        Expr::Div(a, b) => eval(a, env).div(eval(b, env)),
        Expr::Pow(a, b) => {
            let base = eval(a, env);
            // A negative real to a rational power with an odd denominator takes the
            // real branch, as `\sqrt[3]{}` does: (-8)^{2/3} = 4.
            if base.im == 0.0 && base.re < 0.0 {
                let small = |e: &Expr| {
                    matches!(e, Expr::Num(_))
                        || matches!(e, Expr::Div(n, d) if matches!((&**n, &**d), (Expr::Num(_), Expr::Num(_))))
                };
                let simple = match &**b {
                    Expr::Neg(inner) => small(inner),
                    other => small(other),
                };
                if let Some(q) = simple
                    .then(|| exact(b))
                    .flatten()
                    .filter(|q| q.d % 2 != 0 && q.d <= 1_000_001)
                {
                    let m = (-base.re).powf(q.to_f64());
                    return C::r(if q.n % 2 == 0 { m } else { -m });
                }
            }
            base.pow(eval(b, env))
        }
        Expr::Root(k, a) => {
            let (k, a) = (eval(k, env), eval(a, env));
            // Real odd roots of negative reals stay real.
            if k.im == 0.0
                && a.im == 0.0
                && a.re < 0.0
                && k.re.fract() == 0.0
                && (k.re as i64) % 2 != 0
            {
                return C::r(-(-a.re).powf(1.0 / k.re));
            }
            if k == C::r(2.0) {
                return a.sqrt();
            }
            a.pow(C::r(1.0).div(k))
        }
        Expr::Func(f, a) => {
            let z = eval(a, env);
            match f {
                Fun::Sin => z.sin(),
                Fun::Cos => z.cos(),
                Fun::Tan => z.sin().div(z.cos()),
                Fun::Sec => C::r(1.0).div(z.cos()),
                Fun::Csc => C::r(1.0).div(z.sin()),
                Fun::Cot => z.cos().div(z.sin()),
                Fun::Asin => real_only(z, f64::asin),
                Fun::Acos => real_only(z, f64::acos),
                Fun::Atan => real_only(z, f64::atan),
                Fun::Sinh => real_only(z, f64::sinh),
                Fun::Cosh => real_only(z, f64::cosh),
                Fun::Tanh => real_only(z, f64::tanh),
                Fun::Ln => z.ln(),
                Fun::Exp => z.exp(),
            }
        }
        Expr::Log(b, a) => eval(a, env).ln().div(eval(b, env).ln()),
        Expr::Fact(a) => real_only(eval(a, env), |x| {
            if x.fract() != 0.0 || !(0.0..=170.0).contains(&x) {
                return f64::NAN;
            }
            (1..=x as u32).fold(1.0, |acc, k| acc * k as f64)
        }),
        Expr::Binom(n, k) => {
            let (n, k) = (eval(n, env), eval(k, env));
            if n.im != 0.0 || k.im != 0.0 || k.re.fract() != 0.0 || !(0.0..=1000.0).contains(&k.re)
            {
                return C::nan();
            }
            let mut acc = 1.0;
            for j in 0..k.re as u32 {
                acc = acc * (n.re - j as f64) / (j as f64 + 1.0);
            }
            C::r(acc)
        }
        Expr::Abs(a) => C::r(eval(a, env).abs()),
        Expr::Floor(a) => real_only(eval(a, env), f64::floor),
        Expr::Ceil(a) => real_only(eval(a, env), f64::ceil),
        Expr::Pm(..) => C::nan(),
    }
}
