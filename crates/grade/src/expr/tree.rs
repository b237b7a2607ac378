//! Walks over an [`Expr`]: size, variables, and the ± expansion.

use std::collections::BTreeSet;

use super::Expr;

/// Number of nodes.
pub fn size(e: &Expr) -> u64 {
    1 + children(e).iter().map(|c| size(c)).sum::<u64>()
}

pub(super) fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Add(v) | Expr::Mul(v) => v.iter().collect(),
        Expr::Neg(a)
        | Expr::Func(_, a)
        | Expr::Fact(a)
        | Expr::Abs(a)
        | Expr::Floor(a)
        | Expr::Ceil(a) => vec![a],
        Expr::Div(a, b)
        | Expr::Pow(a, b)
        | Expr::Log(a, b)
        | Expr::Root(a, b)
        | Expr::Binom(a, b)
        | Expr::Pm(a, b) => vec![a, b],
        _ => vec![],
    }
}

/// Variable names in `e`.
pub fn vars(e: &Expr, out: &mut BTreeSet<String>) {
    if let Expr::Var(v) = e {
        out.insert(v.clone());
    }
    for c in children(e) {
        vars(c, out);
    }
}

/// Whether `e` contains ±.
pub fn has_pm(e: &Expr) -> bool {
    matches!(e, Expr::Pm(..)) || children(e).into_iter().any(has_pm)
}

/// Whether `e` contains a written infinity.
pub(super) fn has_inf(e: &Expr) -> bool {
    matches!(e, Expr::Inf) || children(e).into_iter().any(has_inf)
}

/// All sign choices of the ± in `e` (at most 8; `None` beyond).
pub fn expand_pm(e: &Expr) -> Option<Vec<Expr>> {
    match e {
        Expr::Pm(a, b) => {
            let mut out = Vec::new();
            for x in expand_pm(a)? {
                for y in expand_pm(b)? {
                    out.push(Expr::Add(vec![x.clone(), y.clone()]));
                    out.push(Expr::Add(vec![x.clone(), Expr::Neg(Box::new(y))]));
                }
            }
            if out.len() > 8 {
                return None;
            }
            Some(out)
        }
        _ if !has_pm(e) => Some(vec![e.clone()]),
        Expr::Add(v) | Expr::Mul(v) => {
            let mut acc: Vec<Vec<Expr>> = vec![Vec::new()];
            for c in v {
                let vs = expand_pm(c)?;
                let mut next = Vec::new();
                for a in &acc {
                    for x in &vs {
                        let mut a2 = a.clone();
                        a2.push(x.clone());
                        next.push(a2);
                    }
                }
                if next.len() > 8 {
                    return None;
                }
                acc = next;
            }
            let add = matches!(e, Expr::Add(_));
            Some(
                acc.into_iter()
                    .map(|v| if add { Expr::Add(v) } else { Expr::Mul(v) })
                    .collect(),
            )
        }
        Expr::Neg(a) => Some(
            expand_pm(a)?
                .into_iter()
                .map(|x| Expr::Neg(Box::new(x)))
                .collect(),
        ),
        Expr::Div(a, b) | Expr::Pow(a, b) | Expr::Root(a, b) => {
            let mut out = Vec::new();
            for x in expand_pm(a)? {
                for y in expand_pm(b)? {
                    let (x, y) = (Box::new(x.clone()), Box::new(y));
                    out.push(match e {
                        Expr::Div(..) => Expr::Div(x, y),
                        Expr::Pow(..) => Expr::Pow(x, y),
                        _ => Expr::Root(x, y),
                    });
                }
            }
            if out.len() > 8 {
                return None;
            }
            Some(out)
        }
        Expr::Func(f, a) => Some(
            expand_pm(a)?
                .into_iter()
                .map(|x| Expr::Func(*f, Box::new(x)))
                .collect(),
        ),
        _ => None,
    }
}
