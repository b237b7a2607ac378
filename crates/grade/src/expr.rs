//! Expressions: a bounded LaTeX/plain-text parser into [`Expr`], exact rational
//! evaluation, numeric (complex) evaluation at fixed pseudo-random points, and the
//! comparisons built on them.
//!
//! Limits: at most [`MAX_TOKENS`] tokens, nesting depth [`MAX_DEPTH`], and every
//! comparison charges a shared [`Budget`]; when a limit is hit the answer is "not
//! parsed" or "not equal", never a hang or a panic.

use std::collections::BTreeSet;

use crate::num::{close, C, Q};

/// Most tokens an expression may have.
pub const MAX_TOKENS: usize = 1500;
/// Deepest nesting the parser follows.
pub const MAX_DEPTH: usize = 48;
/// Number of evaluation points for symbolic comparison.
const POINTS: u64 = 6;
/// Fixed seed of the evaluation points (results are reproducible).
const SEED: u64 = 0x05ee_d0f7_2e70;

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Op(char),
}

const WORD_FUNCS: &[&str] = &[
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "sin", "cos", "tan", "sec",
    "csc", "cot", "log", "exp", "ln", "pi",
];

const GREEK: &[&str] = &[
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

fn tokenize(s: &str) -> Option<Vec<Tok>> {
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

fn parse_num(s: &str) -> Option<Expr> {
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

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    depth: usize,
}

fn is_closer_cmd(c: &str) -> bool {
    matches!(c, "rfloor" | "rceil")
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn eat_op(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Op(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            None
        } else {
            Some(())
        }
    }

    fn expr(&mut self) -> Option<Expr> {
        self.enter()?;
        let a = self.sum()?;
        let r = if self.eat_op(':') {
            let b = self.sum()?;
            Expr::Div(Box::new(a), Box::new(b))
        } else {
            a
        };
        self.depth -= 1;
        Some(r)
    }

    fn sum(&mut self) -> Option<Expr> {
        let mut terms: Vec<Expr> = Vec::new();
        let mut first = true;
        let mut pms = 0;
        loop {
            if terms.len() > 256 {
                return None;
            }
            let sign = match self.peek() {
                Some(Tok::Op('+')) => {
                    self.i += 1;
                    '+'
                }
                Some(Tok::Op('-')) => {
                    self.i += 1;
                    '-'
                }
                Some(Tok::Op('±')) => {
                    self.i += 1;
                    '±'
                }
                _ if first => '+',
                _ => break,
            };
            first = false;
            let t = self.term()?;
            match sign {
                '-' => terms.push(Expr::Neg(Box::new(t))),
                '±' => {
                    pms += 1;
                    if pms > 3 {
                        return None;
                    }
                    let a = match terms.len() {
                        0 => Expr::Num(Q::int(0)),
                        1 => terms.pop()?,
                        _ => Expr::Add(std::mem::take(&mut terms)),
                    };
                    terms.push(Expr::Pm(Box::new(a), Box::new(t)));
                }
                _ => terms.push(t),
            }
        }
        if terms.len() == 1 {
            terms.pop()
        } else {
            Some(Expr::Add(terms))
        }
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) => true,
            Some(Tok::Cmd(c)) => !is_closer_cmd(c),
            Some(Tok::Op(c)) => matches!(c, '(' | '[' | '{' | '∞'),
            None => false,
        }
    }

    fn term(&mut self) -> Option<Expr> {
        let mut f = vec![self.power()?];
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > 256 {
                return None;
            }
            if self.eat_op('*') {
                f.push(self.power()?);
            } else if self.eat_op('/') {
                let d = self.power()?;
                let prev = f.pop()?;
                f.push(Expr::Div(Box::new(prev), Box::new(d)));
            } else if self.starts_atom() {
                let is_frac = matches!(self.peek(), Some(Tok::Cmd(c)) if c == "frac");
                let g = self.power()?;
                // Mixed number: an integer immediately followed by \frac{int}{int}.
                let mixed = is_frac
                    && f.len() == 1
                    && matches!((&f[0], &g), (Expr::Num(w), Expr::Div(n, d))
                        if w.is_int() && matches!((&**n, &**d), (Expr::Num(n), Expr::Num(d))
                            if n.is_int() && d.is_int() && n.n >= 0 && d.n > 0));
                if mixed {
                    let w = f.pop()?;
                    f.push(Expr::Add(vec![w, g]));
                    continue;
                }
                f.push(g);
            } else {
                break;
            }
        }
        if f.len() == 1 {
            f.pop()
        } else {
            Some(Expr::Mul(f))
        }
    }

    /// Postfixed atom with an optional exponent.
    fn power(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut base = self.postfix()?;
        let mut n = 0;
        while self.eat_op('^') {
            n += 1;
            if n > 4 {
                return None;
            }
            let e = self.exponent()?;
            base = Expr::Pow(Box::new(base), Box::new(e));
            base = self.postfix_ops(base);
        }
        self.depth -= 1;
        Some(base)
    }

    fn exponent(&mut self) -> Option<Expr> {
        if self.eat_op('-') {
            return Some(Expr::Neg(Box::new(self.arg()?)));
        }
        if self.eat_op('+') {
            return self.arg();
        }
        if self.peek() == Some(&Tok::Op('(')) {
            return self.atom();
        }
        // Plain-text `2^10` means 2^{10}.
        if let Some(Tok::Num(_)) = self.peek() {
            return self.atom();
        }
        self.arg()
    }

    fn postfix(&mut self) -> Option<Expr> {
        let a = self.atom()?;
        Some(self.postfix_ops(a))
    }

    fn postfix_ops(&mut self, mut a: Expr) -> Expr {
        for _ in 0..4 {
            if self.eat_op('!') {
                a = Expr::Fact(Box::new(a));
            } else if self.eat_op('%') {
                a = Expr::Div(Box::new(a), Box::new(Expr::Num(Q::int(100))));
            } else {
                return a;
            }
        }
        a
    }

    /// A macro argument: `{...}`, one digit, one letter or one command atom.
    fn arg(&mut self) -> Option<Expr> {
        self.enter()?;
        let r = match self.peek()?.clone() {
            Tok::Op('{') => {
                self.i += 1;
                let e = self.expr()?;
                if !self.eat_op('}') {
                    return None;
                }
                e
            }
            Tok::Num(s) => {
                let mut it = s.chars();
                let d = it.next()?;
                let rest: String = it.collect();
                if !d.is_ascii_digit() {
                    return None;
                }
                if rest.is_empty() {
                    self.i += 1;
                } else {
                    self.toks[self.i] = Tok::Num(rest);
                }
                Expr::Num(Q::int(d.to_digit(10)? as i128))
            }
            Tok::Letter(_) | Tok::Cmd(_) | Tok::Op('∞') => self.atom()?,
            _ => return None,
        };
        self.depth -= 1;
        Some(r)
    }

    fn subscript_name(&mut self) -> Option<String> {
        // Raw text of a subscript argument, used as part of a variable name.
        let mut s = String::new();
        if self.eat_op('{') {
            let mut depth = 1usize;
            loop {
                let t = self.peek()?.clone();
                self.i += 1;
                match t {
                    Tok::Op('{') => depth += 1,
                    Tok::Op('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                s.push_str(&tok_text(&t));
            }
        } else {
            let t = self.peek()?.clone();
            match &t {
                Tok::Num(n) => {
                    let mut it = n.chars();
                    let d = it.next()?;
                    let rest: String = it.collect();
                    if rest.is_empty() {
                        self.i += 1;
                    } else {
                        self.toks[self.i] = Tok::Num(rest);
                    }
                    s.push(d);
                }
                _ => {
                    self.i += 1;
                    s.push_str(&tok_text(&t));
                }
            }
        }
        Some(s)
    }

    fn atom(&mut self) -> Option<Expr> {
        self.enter()?;
        let t = self.peek()?.clone();
        self.i += 1;
        let r = match t {
            Tok::Num(s) => parse_num(&s)?,
            Tok::Letter(c) => {
                if self.eat_op('_') {
                    let sub = self.subscript_name()?;
                    Expr::Var(format!("{c}_{sub}"))
                } else if c == 'e' {
                    Expr::E
                } else if c == 'i' {
                    Expr::I
                } else {
                    Expr::Var(c.to_string())
                }
            }
            Tok::Op('∞') => Expr::Inf,
            Tok::Op(o @ ('(' | '[' | '{')) => {
                let close = match o {
                    '(' => ')',
                    '[' => ']',
                    _ => '}',
                };
                let e = self.expr()?;
                if !self.eat_op(close) {
                    return None;
                }
                e
            }
            Tok::Op('|') => {
                let e = self.expr()?;
                if !self.eat_op('|') {
                    return None;
                }
                Expr::Abs(Box::new(e))
            }
            Tok::Cmd(c) => self.command(&c)?,
            _ => return None,
        };
        self.depth -= 1;
        Some(r)
    }

    fn command(&mut self, c: &str) -> Option<Expr> {
        let f = match c {
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                return Some(Expr::Div(Box::new(a), Box::new(b)));
            }
            "binom" => {
                let a = self.arg()?;
                let b = self.arg()?;
                return Some(Expr::Binom(Box::new(a), Box::new(b)));
            }
            "sqrt" => {
                let idx = if self.eat_op('[') {
                    let e = self.expr()?;
                    if !self.eat_op(']') {
                        return None;
                    }
                    e
                } else {
                    Expr::Num(Q::int(2))
                };
                let a = if self.peek() == Some(&Tok::Op('(')) {
                    self.atom()?
                } else {
                    self.arg()?
                };
                return Some(Expr::Root(Box::new(idx), Box::new(a)));
            }
            "pi" => return Some(Expr::Pi),
            "infty" => return Some(Expr::Inf),
            "lfloor" | "lceil" => {
                let e = self.expr()?;
                let want = if c == "lfloor" { "rfloor" } else { "rceil" };
                if self.peek() != Some(&Tok::Cmd(want.into())) {
                    return None;
                }
                self.i += 1;
                return Some(if c == "lfloor" {
                    Expr::Floor(Box::new(e))
                } else {
                    Expr::Ceil(Box::new(e))
                });
            }
            "sin" => Fun::Sin,
            "cos" => Fun::Cos,
            "tan" => Fun::Tan,
            "sec" => Fun::Sec,
            "csc" => Fun::Csc,
            "cot" => Fun::Cot,
            "arcsin" => Fun::Asin,
            "arccos" => Fun::Acos,
            "arctan" => Fun::Atan,
            "sinh" => Fun::Sinh,
            "cosh" => Fun::Cosh,
            "tanh" => Fun::Tanh,
            "ln" => Fun::Ln,
            "exp" => Fun::Exp,
            "log" => {
                let base = if self.eat_op('_') {
                    self.arg()?
                } else {
                    Expr::Num(Q::int(10))
                };
                let pw = if self.eat_op('^') {
                    Some(self.exponent()?)
                } else {
                    None
                };
                let a = self.func_arg()?;
                let l = Expr::Log(Box::new(base), Box::new(a));
                return Some(match pw {
                    Some(p) => Expr::Pow(Box::new(l), Box::new(p)),
                    None => l,
                });
            }
            g if GREEK.contains(&g) => {
                if self.eat_op('_') {
                    let sub = self.subscript_name()?;
                    return Some(Expr::Var(format!("{g}_{sub}")));
                }
                return Some(Expr::Var(g.to_string()));
            }
            _ => return None,
        };
        let pw = if self.eat_op('^') {
            Some(self.exponent()?)
        } else {
            None
        };
        let a = self.func_arg()?;
        // sin^{-1} x is arcsin x.
        if let Some(Expr::Neg(p)) = &pw {
            if **p == Expr::Num(Q::int(1)) {
                let inv = match f {
                    Fun::Sin => Some(Fun::Asin),
                    Fun::Cos => Some(Fun::Acos),
                    Fun::Tan => Some(Fun::Atan),
                    _ => None,
                };
                if let Some(g) = inv {
                    return Some(Expr::Func(g, Box::new(a)));
                }
            }
        }
        let app = Expr::Func(f, Box::new(a));
        Some(match pw {
            Some(p) => Expr::Pow(Box::new(app), Box::new(p)),
            None => app,
        })
    }

    fn func_arg(&mut self) -> Option<Expr> {
        if self.peek() == Some(&Tok::Op('(')) {
            let a = self.atom()?;
            return Some(self.postfix_ops(a));
        }
        // \sin 2x is read as sin(2x) when a number is followed by letters.
        if let Some(Tok::Num(_)) = self.peek() {
            let n = self.power()?;
            let mut f = vec![n];
            while matches!(self.peek(), Some(Tok::Letter(_))) {
                f.push(self.power()?);
            }
            return Some(if f.len() == 1 { f.pop()? } else { Expr::Mul(f) });
        }
        self.power()
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Num(s) => s.clone(),
        Tok::Letter(c) => c.to_string(),
        Tok::Cmd(c) => format!("\\{c}"),
        Tok::Op(c) => c.to_string(),
    }
}

/// Parses a normalised expression string; `None` when it is not a (supported) expression.
pub fn parse(s: &str) -> Option<Expr> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.i != p.toks.len() {
        return None;
    }
    Some(e)
}

/// Number of nodes.
pub fn size(e: &Expr) -> u64 {
    1 + children(e).iter().map(|c| size(c)).sum::<u64>()
}

fn children(e: &Expr) -> Vec<&Expr> {
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
fn has_inf(e: &Expr) -> bool {
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

/// Exact rational value, when `e` has one that the evaluator can find.
pub fn exact(e: &Expr) -> Option<Q> {
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
