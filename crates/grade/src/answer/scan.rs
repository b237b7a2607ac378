//! Scanning helpers and word-level rules: matching brackets, top-level separators,
//! unit words, text-like answers, choice letters.

use crate::expr;

/// Index of the closer matching the opener at `open`, counting all bracket kinds
/// alike (so that `[0,1)` balances).
pub(super) fn matching_close(cs: &[char], open: usize) -> Option<usize> {
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
pub(super) fn split_top(
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

pub(super) fn list_sep(cs: &[char], i: usize) -> Option<usize> {
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

pub(super) fn is_rel(c: char) -> bool {
    matches!(c, '=' | '≈' | '<' | '>' | '≤' | '≥' | '≠' | '∈')
}

/// Text comparison form: lower case, letters and digits, single spaces.
pub(super) fn text_key(s: &str) -> String {
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
pub(super) fn strip_units(s: &str) -> (String, bool) {
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
pub(super) fn looks_text(s: &str) -> bool {
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

pub(super) fn choice(s: &str) -> Option<char> {
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

pub(super) fn label_like(lhs: &str) -> bool {
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

pub(super) fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}
