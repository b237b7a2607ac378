//! The recursive-descent parser: tokens to [`Expr`], under [`MAX_DEPTH`].

use super::lexer::{parse_num, tok_text, tokenize, Tok, GREEK};
use super::{Expr, Fun, MAX_DEPTH};
use crate::num::Q;

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
