//! Tokens of an expression string, and number literals.

use super::{Expr, MAX_TOKENS};
use crate::num::Q;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Op(char),
}

const WORD_FUNCS: &[&str] = &[
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "sin", "cos", "tan", "sec",
    "csc", "cot", "log", "exp", "ln", "pi",
];

pub(super) const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Whether `w` is a function or constant name that may appear without a backslash.
pub fn is_word_func(w: &str) -> bool {
    WORD_FUNCS.contains(&w)
}

pub(super) fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        if out.len() > MAX_TOKENS {
            return None;
        }
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let st = i;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            if i < cs.len() && cs[i] == '.' && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < cs.len() && cs[i].is_ascii_digit() {
                    i += 1;
                }
            } else if i < cs.len() && cs[i] == '.' && st < i {
                // "5." is the number 5.
                i += 1;
            }
            // Scientific notation 1.5e-3 / 2E10.
            if i < cs.len() && (cs[i] == 'e' || cs[i] == 'E') {
                let mut j = i + 1;
                if j < cs.len() && (cs[j] == '+' || cs[j] == '-') {
                    j += 1;
                }
                if j < cs.len() && cs[j].is_ascii_digit() {
                    while j < cs.len() && cs[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            out.push(Tok::Num(cs[st..i].iter().collect()));
        } else if c.is_ascii_alphabetic() {
            let st = i;
            while i < cs.len() && cs[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word: String = cs[st..i].iter().collect();
            let mut k = 0;
            while k < word.len() {
                let rest = &word[k..];
                if let Some(f) = WORD_FUNCS.iter().find(|f| rest.starts_with(**f)) {
                    out.push(Tok::Cmd((*f).to_string()));
                    k += f.len();
                } else {
                    out.push(Tok::Letter(rest.chars().next()?));
                    k += 1;
                }
            }
        } else if c == '\\' {
            i += 1;
            let st = i;
            while i < cs.len() && cs[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == st {
                // Escaped symbol: only braces are meaningful here.
                let d = *cs.get(i)?;
                i += 1;
                match d {
                    '{' => out.push(Tok::Op('{')),
                    '}' => out.push(Tok::Op('}')),
                    _ => return None,
                }
            } else {
                out.push(Tok::Cmd(cs[st..i].iter().collect()));
            }
        } else {
            let op = match c {
                '⦃' => '{',
                '⦄' => '}',
                '∓' => '±',
                _ => c,
            };
            if !"+-*/^_!|()[]{}±∞%':".contains(op) {
                return None;
            }
            out.push(Tok::Op(op));
            i += 1;
        }
    }
    Some(out)
}

pub(super) fn parse_num(s: &str) -> Option<Expr> {
    let s = s.strip_suffix('.').unwrap_or(s);
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(k) => (&s[..k], s[k + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (ip, fp) = match mant.find('.') {
        Some(k) => (&mant[..k], &mant[k + 1..]),
        None => (mant, ""),
    };
    let digits = format!("{ip}{fp}");
    let digits = digits.trim_start_matches('0');
    let scale = exp - fp.len() as i64;
    if digits.len() <= 38 && scale.abs() <= 38 {
        let n: Option<i128> = if digits.is_empty() {
            Some(0)
        } else {
            digits.parse().ok()
        };
        let p = Q::int(10).powi(scale.unsigned_abs() as i128);
        let q = match (n, p) {
            (Some(n), Some(p)) if scale >= 0 => Q::int(n).mul(p),
            (Some(n), Some(p)) => Q::int(n).div(p),
            _ => None,
        };
        if let Some(q) = q {
            return Some(Expr::Num(q));
        }
    }
    let f: f64 = s.parse().ok()?;
    Some(Expr::Float(f))
}

pub(super) fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Num(s) => s.clone(),
        Tok::Letter(c) => c.to_string(),
        Tok::Cmd(c) => format!("\\{c}"),
        Tok::Op(c) => c.to_string(),
    }
}
