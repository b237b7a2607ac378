//! A normalised answer string to its structure ([`Ans`]).

use super::scan::{
    choice, compact, is_rel, label_like, list_sep, looks_text, matching_close, split_top,
    strip_units, text_key,
};
use super::{Ans, IneqOp, Interval, MAX_NEST};
use crate::expr::{self, Expr};

/// Parses a normalised answer string.
pub fn parse(s: &str) -> Ans {
    parse_at(s, 0)
}

fn parse_at(s: &str, depth: usize) -> Ans {
    let s = s.trim();
    let s = s.trim_end_matches(['.', ',', ';']).trim();
    if depth > MAX_NEST {
        return Ans::Text(compact(s));
    }
    let cs: Vec<char> = s.chars().collect();
    // List.
    let parts: Vec<String> = split_top(&cs, list_sep)
        .into_iter()
        .map(|(p, _)| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() >= 2 {
        return Ans::List(parts.iter().map(|p| parse_at(p, depth + 1)).collect());
    }
    // Union.
    let parts = split_top(&cs, |cs, i| (cs[i] == '∪').then_some(1));
    if parts.len() >= 2 {
        return Ans::Union(parts.iter().map(|(p, _)| parse_at(p, depth + 1)).collect());
    }
    if let Some(a) = relation(&cs, depth) {
        return a;
    }
    if let Some(c) = choice(s) {
        return Ans::Choice(c);
    }
    if s.starts_with("\\begin") {
        if let Some(m) = matrix(s, depth) {
            return m;
        }
    }
    if let (Some(&o), Some(&c)) = (cs.first(), cs.last()) {
        if matching_close(&cs, 0) == Some(cs.len() - 1) && cs.len() >= 2 {
            let inner: String = cs[1..cs.len() - 1].iter().collect();
            let ic: Vec<char> = inner.chars().collect();
            let items: Vec<String> =
                split_top(&ic, |cs, i| (cs[i] == ',' || cs[i] == ';').then_some(1))
                    .into_iter()
                    .map(|(p, _)| p.trim().to_string())
                    .collect();
            let elems = |items: &[String]| {
                items
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| parse_at(p, depth + 1))
                    .collect::<Vec<_>>()
            };
            match (o, c) {
                ('⦃', '⦄') => return Ans::Set(elems(&items)),
                ('{', '}') if items.len() >= 2 => return Ans::Set(elems(&items)),
                ('{', '}') => return parse_at(&inner, depth + 1),
                ('(', ')') if items.len() >= 2 => return Ans::Tuple(elems(&items)),
                ('(', ')') | ('[', ']') if inner.trim_start().starts_with("\\begin") => {
                    return parse_at(&inner, depth + 1)
                }
                ('[', ']') if items.len() > 2 => return Ans::Tuple(elems(&items)),
                ('[', ']') | ('[', ')') | ('(', ']') if items.len() == 2 => {
                    let (Some(lo), Some(hi)) = (expr::parse(&items[0]), expr::parse(&items[1]))
                    else {
                        return Ans::Text(compact(s));
                    };
                    return Ans::Interval(Interval {
                        lo,
                        hi,
                        lo_closed: o == '[',
                        hi_closed: c == ']',
                    });
                }
                ('[', ')') | ('(', ']') => return Ans::Text(compact(s)),
                _ => {}
            }
        }
    }
    let (t, pct) = strip_units(s);
    if t.is_empty() || looks_text(&t) {
        return Ans::Text(text_key(s));
    }
    match expr::parse(&t) {
        Some(e) if expr::has_pm(&e) => match expr::expand_pm(&e) {
            Some(v) => Ans::Set(v.into_iter().map(|e| Ans::Expr { e, pct }).collect()),
            None => Ans::Text(compact(s)),
        },
        Some(e) => Ans::Expr { e, pct },
        None => Ans::Text(compact(s)),
    }
}

fn matrix(s: &str, depth: usize) -> Option<Ans> {
    let open_end = s.find('}')?;
    let env = &s[7..open_end];
    let mut body = &s[open_end + 1..];
    let end_tag = format!("\\end{{{env}}}");
    let close = body.rfind(&end_tag)?;
    if !body[close + end_tag.len()..].trim().is_empty() {
        return None;
    }
    body = &body[..close];
    // Skip an array column spec such as {cc}.
    if env == "array" && body.trim_start().starts_with('{') {
        let b = body.trim_start();
        let k = b.find('}')?;
        body = &b[k + 1..];
    }
    let rows: Vec<Vec<Ans>> = body
        .split("\\\\")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.split('&').map(|c| parse_at(c, depth + 1)).collect())
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some(Ans::Matrix(rows))
}

pub(super) fn neg(e: Expr) -> Expr {
    Expr::Neg(Box::new(e))
}

fn relation(cs: &[char], depth: usize) -> Option<Ans> {
    let parts = split_top(cs, |cs, i| is_rel(cs[i]).then_some(1));
    if parts.len() < 2 {
        return None;
    }
    let segs: Vec<String> = parts.iter().map(|(p, _)| p.trim().to_string()).collect();
    let ops: Vec<char> = parts
        .iter()
        .filter_map(|(_, o)| o.as_ref()?.chars().next())
        .collect();
    let s: String = cs.iter().collect();
    if segs.iter().any(|p| p.is_empty()) {
        return Some(Ans::Text(compact(&s)));
    }
    let n = segs.len();
    if ops.iter().all(|o| matches!(o, '=' | '≈' | '∈')) {
        let idx = (1..n).rev().find(|&k| ops[k - 1] != '≈').unwrap_or(n - 1);
        if n >= 3 {
            return Some(Ans::Assign {
                value: Box::new(parse_at(&segs[idx], depth + 1)),
                eq: None,
            });
        }
        let eq = match (expr::parse(&segs[0]), expr::parse(&segs[1])) {
            (Some(l), Some(r)) if ops[0] == '=' => Some((l, r)),
            _ => None,
        };
        // `c ≈ 0.577` with a non-name `c`: the exact `c` is the value (a decimal
        // reference still matches it by its precision).
        if ops[0] == '≈' && !label_like(&segs[0]) {
            return Some(Ans::Assign {
                value: Box::new(parse_at(&segs[0], depth + 1)),
                eq: None,
            });
        }
        if label_like(&segs[0]) || ops[0] == '∈' || ops[0] == '≈' {
            return Some(Ans::Assign {
                value: Box::new(parse_at(&segs[1], depth + 1)),
                eq,
            });
        }
        return Some(match eq {
            Some((l, r)) => Ans::Equation(l, r),
            None => Ans::Text(compact(&s)),
        });
    }
    if ops.iter().all(|o| matches!(o, '<' | '>' | '≤' | '≥' | '≠')) {
        if n == 2 {
            let (Some(l), Some(r)) = (expr::parse(&segs[0]), expr::parse(&segs[1])) else {
                return Some(Ans::Text(compact(&s)));
            };
            let (l, r, op) = match ops[0] {
                '<' => (l, r, IneqOp::Lt),
                '≤' => (l, r, IneqOp::Le),
                '>' => (r, l, IneqOp::Lt),
                '≥' => (r, l, IneqOp::Le),
                _ => (l, r, IneqOp::Ne),
            };
            let constant = |e: &Expr| {
                let mut v = std::collections::BTreeSet::new();
                expr::vars(e, &mut v);
                v.is_empty()
            };
            let closed = op == IneqOp::Le;
            let inf = Expr::Inf;
            let interval = match (&l, &r, op) {
                (_, _, IneqOp::Ne) => None,
                (Expr::Var(_), c, _) if constant(c) => Some(Interval {
                    lo: neg(inf),
                    hi: c.clone(),
                    lo_closed: false,
                    hi_closed: closed,
                }),
                (c, Expr::Var(_), _) if constant(c) => Some(Interval {
                    lo: c.clone(),
                    hi: inf,
                    lo_closed: closed,
                    hi_closed: false,
                }),
                _ => None,
            };
            let f = Expr::Add(vec![l, neg(r)]);
            return Some(Ans::Ineq { f, op, interval });
        }
        if n == 3 && label_like(&segs[1]) {
            let up = ops.iter().all(|o| matches!(o, '<' | '≤'));
            let down = ops.iter().all(|o| matches!(o, '>' | '≥'));
            let (Some(a), Some(b)) = (expr::parse(&segs[0]), expr::parse(&segs[2])) else {
                return Some(Ans::Text(compact(&s)));
            };
            if up {
                return Some(Ans::Interval(Interval {
                    lo: a,
                    hi: b,
                    lo_closed: ops[0] == '≤',
                    hi_closed: ops[1] == '≤',
                }));
            }
            if down {
                return Some(Ans::Interval(Interval {
                    lo: b,
                    hi: a,
                    lo_closed: ops[1] == '≥',
                    hi_closed: ops[0] == '≥',
                }));
            }
        }
    }
    Some(Ans::Text(compact(&s)))
}
