//! Structured answers: a normalised answer string parsed into [`Ans`] (number or
//! expression, tuple, interval, set, list, union, matrix, assignment `x = …`,
//! equation, inequality, choice letter, text) and the equivalence between two of them.

use crate::expr::{self, Budget, Expr};
use crate::num::Q;

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

/// Index of the closer matching the opener at `open`, counting all bracket kinds
/// alike (so that `[0,1)` balances).
fn matching_close(cs: &[char], open: usize) -> Option<usize> {
    let mut depth = 0i64;
    for (i, &c) in cs.iter().enumerate().skip(open) {
        match c {
            '(' | '[' | '{' | '⦃' => depth += 1,
            ')' | ']' | '}' | '⦄' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at top-level separators; `sep(cs, i)` gives the separator length at `i`.
fn split_top(
    cs: &[char],
    sep: impl Fn(&[char], usize) -> Option<usize>,
) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut depth = 0i64;
    let mut st = 0;
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c == '\\' {
            let rest = &cs[i + 1..];
            if rest.starts_with(&['b', 'e', 'g', 'i', 'n']) {
                depth += 1;
            } else if rest.starts_with(&['e', 'n', 'd']) {
                depth -= 1;
            }
            i += 2;
            continue;
        }
        match c {
            '(' | '[' | '{' | '⦃' => depth += 1,
            ')' | ']' | '}' | '⦄' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            if let Some(n) = sep(cs, i) {
                let n = n.max(1);
                parts.push((
                    cs[st..i].iter().collect::<String>(),
                    Some(cs[i..(i + n).min(cs.len())].iter().collect()),
                ));
                i += n;
                st = i;
                continue;
            }
        }
        i += 1;
    }
    parts.push((cs[st.min(cs.len())..].iter().collect(), None));
    parts
}

fn word_at(cs: &[char], i: usize, w: &str) -> Option<usize> {
    // " and " as a whole word surrounded by spaces.
    let wc: Vec<char> = format!(" {w} ").chars().collect();
    if cs
        .get(i..i + wc.len())
        .is_some_and(|s| s.iter().zip(&wc).all(|(a, b)| a.eq_ignore_ascii_case(b)))
    {
        Some(wc.len())
    } else {
        None
    }
}

fn list_sep(cs: &[char], i: usize) -> Option<usize> {
    match cs[i] {
        ',' | ';' => Some(1),
        ' ' => word_at(cs, i, "and").or_else(|| word_at(cs, i, "or")),
        // `(11,7)or(7,11)`: a glued "or" between two brackets.
        'o' if i > 0
            && cs[i - 1] == ')'
            && cs.get(i + 1) == Some(&'r')
            && cs.get(i + 2) == Some(&'(') =>
        {
            Some(2)
        }
        _ => None,
    }
}

fn is_rel(c: char) -> bool {
    matches!(c, '=' | '≈' | '<' | '>' | '≤' | '≥' | '≠' | '∈')
}

/// Text comparison form: lower case, letters and digits, single spaces.
pub fn text_key(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    crate::normalize::collapse_spaces(&t)
}

const UNITS: &[&str] = &[
    "cm",
    "mm",
    "km",
    "m",
    "meter",
    "meters",
    "metre",
    "metres",
    "inch",
    "inches",
    "ft",
    "feet",
    "foot",
    "yard",
    "yards",
    "yd",
    "mile",
    "miles",
    "unit",
    "units",
    "degree",
    "degrees",
    "deg",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "yuan",
    "euro",
    "euros",
    "second",
    "seconds",
    "minute",
    "minutes",
    "min",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "kg",
    "g",
    "gram",
    "grams",
    "pound",
    "pounds",
    "lb",
    "lbs",
    "ounce",
    "ounces",
    "oz",
    "liter",
    "liters",
    "litre",
    "litres",
    "ml",
    "gallon",
    "gallons",
    "square",
    "sq",
    "cubic",
    "mph",
    "radian",
    "radians",
    "rad",
    "people",
    "students",
    "ways",
    "times",
    "points",
    "percent",
    "pct",
    "percentage",
];

fn is_unit_word(w: &str) -> bool {
    let base = w
        .trim_end_matches('.')
        .trim_end_matches("^{2}")
        .trim_end_matches("^{3}")
        .trim_end_matches("^2")
        .trim_end_matches("^3");
    base.len() >= 2 && base.chars().all(|c| c.is_ascii_alphabetic()) && !expr::is_word_func(base)
}

/// Most trailing words [`words_after_constant`] drops.
const MAX_TRAILING_WORDS: usize = 6;

/// The byte length of the constant expression that `t` starts with when only words
/// (unit-like: letters only, not function names) follow it.
fn words_after_constant(t: &str) -> Option<usize> {
    let mut k = t.len();
    for _ in 0..MAX_TRAILING_WORDS {
        let sp = t[..k].trim_end().rfind(' ')?;
        if !is_unit_word(t[sp + 1..k].trim()) {
            return None;
        }
        k = sp;
        let prefix = t[..k].trim_end();
        let constant = expr::parse(prefix).is_some_and(|e| {
            let mut v = std::collections::BTreeSet::new();
            expr::vars(&e, &mut v);
            v.is_empty()
        });
        if constant {
            return Some(k);
        }
    }
    None
}

/// Strips a trailing percent sign or unit words; returns the rest and the percent flag.
fn strip_units(s: &str) -> (String, bool) {
    let mut t = s.trim().replace(" ^", "^");
    let mut pct = false;
    loop {
        if let Some(r) = t.strip_suffix('%') {
            pct = true;
            t = r.trim_end().to_string();
            continue;
        }
        let Some(k) = t.rfind(' ') else { break };
        let w = &t[k + 1..];
        if !is_unit_word(w) {
            break;
        }
        let lw = w.to_ascii_lowercase();
        let known = UNITS.contains(
            &lw.trim_end_matches('.')
                .trim_end_matches("^2")
                .trim_end_matches("^3")
                .trim_end_matches("^{2}")
                .trim_end_matches("^{3}"),
        );
        let prefix = t[..k].trim_end();
        let constant = expr::parse(prefix).is_some_and(|e| {
            let mut v = std::collections::BTreeSet::new();
            expr::vars(&e, &mut v);
            v.is_empty()
        });
        if !(known || constant) {
            // "17 any text": a constant followed only by words.
            if let Some(k) = words_after_constant(&t) {
                t.truncate(k);
                t = t.trim_end().to_string();
            }
            break;
        }
        if matches!(lw.as_str(), "percent" | "pct" | "percentage") {
            pct = true;
        }
        t = prefix.to_string();
    }
    // A unit glued to a number: "5cm", "1000.99m^2".
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    if digits > 0 && digits < t.len() {
        let w = t[digits..].trim();
        if UNITS.contains(&w.trim_end_matches("^2").trim_end_matches("^3")) && w.len() >= 2 {
            t = t[..digits].to_string();
        }
    }
    (t, pct)
}

/// Whether the string reads as words rather than math.
fn looks_text(s: &str) -> bool {
    if matches!(
        s.to_ascii_lowercase().as_str(),
        "no" | "ok" | "none" | "yes" | "true" | "false"
    ) {
        return true;
    }
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        if cs[i] == '\\' {
            i += 1;
            while i < cs.len() && cs[i].is_ascii_alphabetic() {
                i += 1;
            }
            continue;
        }
        if cs[i].is_alphabetic() {
            let st = i;
            while i < cs.len() && cs[i].is_alphabetic() {
                i += 1;
            }
            let w: String = cs[st..i].iter().collect();
            let after_sub =
                st > 0 && (cs[st - 1] == '_' || cs[st - 1] == '{' && st > 1 && cs[st - 2] == '_');
            if !after_sub && w.chars().count() >= 3 && !is_func_run(&w) {
                return true;
            }
            if !w.is_ascii() {
                return true;
            }
            continue;
        }
        i += 1;
    }
    false
}

/// Whether a letter run is made of function names (e.g. `sin`, `ln`, `sqrt`).
fn is_func_run(w: &str) -> bool {
    let mut k = 0;
    while k < w.len() {
        match [
            "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "sin", "cos", "tan",
            "sec", "csc", "cot", "log", "exp", "ln", "pi",
        ]
        .iter()
        .find(|f| w[k..].starts_with(**f))
        {
            Some(f) => k += f.len(),
            None => return false,
        }
    }
    true
}

fn choice(s: &str) -> Option<char> {
    let t = s.trim();
    let t = t
        .strip_prefix('(')
        .map(|r| r.strip_suffix(')').unwrap_or(r))
        .unwrap_or(t);
    let t = t.trim_end_matches(['.', ')']).trim();
    let mut it = t.chars();
    let c = it.next()?;
    if it.next().is_none() && c.is_ascii_uppercase() {
        return Some(c);
    }
    // "(C) 12": a letter in parentheses followed by its option text.
    let cs: Vec<char> = s.trim().chars().collect();
    if cs.len() > 4 && cs[0] == '(' && cs[1].is_ascii_uppercase() && cs[2] == ')' && cs[3] == ' ' {
        return Some(cs[1]);
    }
    None
}

fn label_like(lhs: &str) -> bool {
    let cs: Vec<char> = lhs.trim().chars().collect();
    let Some(&first) = cs.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '\\' || first == '|' || first == '(') {
        return false;
    }
    let ops = split_top(&cs, |cs, i| matches!(cs[i], '+' | '-' | '±').then_some(1));
    if ops.len() > 1 {
        return false;
    }
    match expr::parse(lhs) {
        Some(e) => {
            let mut v = std::collections::BTreeSet::new();
            expr::vars(&e, &mut v);
            !v.is_empty()
        }
        None => true,
    }
}

fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

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

fn neg(e: Expr) -> Expr {
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
