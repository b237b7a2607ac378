//! String normalisation of an answer before it is parsed: math delimiters, spacing
//! macros, `\left`/`\right`, `\text{}`-like wrappers, `\boxed{}`, fraction variants,
//! relation and operator macros, thousands separators, degrees and currency.
//!
//! Every pass is linear in the input; the caller caps the input length.

/// Commands whose argument is kept and the command dropped.
const UNWRAP: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "textnormal",
    "textsf",
    "texttt",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathcal",
    "mathbb",
    "mbox",
    "hbox",
    "boxed",
    "fbox",
    "operatorname",
    "emph",
    "bm",
    "boldsymbol",
    "pmb",
    "underline",
    "overline",
    "vec",
    "hat",
    "bar",
    "tilde",
    "widetilde",
    "widehat",
    "overrightarrow",
    "mathscr",
    "mathfrak",
];

/// Commands that are pure layout and vanish (becoming a space).
const DROP: &[&str] = &[
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "limits",
    "nolimits",
    "quad",
    "qquad",
    "hfill",
    "mathstrut",
    "strut",
    "middle",
    "nonumber",
    "notag",
    "rm",
    "bf",
    "it",
    "mathop",
    "hspace",
    "phantom",
    "vphantom",
    "hphantom",
    "thinspace",
    "enspace",
];

/// Index of the `}` matching the `{` at `open`, or `None`.
pub fn matching_brace(cs: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < cs.len() {
        match cs[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Rewrites LaTeX macros into a compact form: see the module docs. `\{`/`\}` become
/// `⦃`/`⦄`; relation macros become `≤ ≥ ≠ ≈ ∈`; `\cdot`/`\times` become `*`.
pub fn rewrite(s: &str) -> String {
    let cs: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    rewrite_into(&cs, &mut out, 0);
    out
}

fn is_known_command(n: &str) -> bool {
    UNWRAP.contains(&n)
        || DROP.contains(&n)
        || matches!(
            n,
            "frac"
                | "dfrac"
                | "tfrac"
                | "cfrac"
                | "sqrt"
                | "binom"
                | "dbinom"
                | "le"
                | "leq"
                | "ge"
                | "geq"
                | "lt"
                | "gt"
                | "ne"
                | "neq"
                | "approx"
                | "cdot"
                | "times"
                | "div"
                | "circ"
                | "infty"
                | "pm"
                | "mp"
                | "cup"
                | "cap"
                | "in"
                | "pi"
                | "sin"
                | "cos"
                | "tan"
                | "log"
                | "ln"
        )
}

fn needs_group(out: &str) -> bool {
    let t = out.trim_end();
    t.ends_with('^')
        || t.ends_with('_')
        || t.ends_with("\\frac")
        || t.ends_with("\\sqrt")
        || t.ends_with("\\binom")
}

fn last_non_space(out: &str) -> Option<char> {
    out.chars().rev().find(|c| !c.is_whitespace())
}

fn rewrite_into(cs: &[char], out: &mut String, depth: usize) {
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        i = if c == '\\' {
            rewrite_command(cs, i, out, depth)
        } else {
            rewrite_char(cs, c, i + 1, out)
        };
    }
}

/// Rewrites the command (or escaped character) whose backslash is at `i`; returns the
/// index after what it consumed.
fn rewrite_command(cs: &[char], i: usize, out: &mut String, depth: usize) -> usize {
    let st = i + 1;
    let mut j = st;
    while j < cs.len() && cs[j].is_ascii_alphabetic() {
        j += 1;
    }
    if j == st
        && cs.get(st) == Some(&'\\')
        && cs.get(st + 1).is_some_and(|c| c.is_ascii_alphabetic())
    {
        // `\\frac` from a doubly escaped source: a command when the name is known.
        let mut k = st + 1;
        while k < cs.len() && cs[k].is_ascii_alphabetic() {
            k += 1;
        }
        let name: String = cs[st + 1..k].iter().collect();
        if is_known_command(&name) {
            return st;
        }
    }
    if j == st {
        // Escaped single character.
        let Some(&d) = cs.get(st) else {
            return i + 1;
        };
        return rewrite_escaped(cs, d, st + 1, out);
    }
    let name: String = cs[st..j].iter().collect();
    let mut i = j;
    let n = name.as_str();
    if UNWRAP.contains(&n) && depth < 32 {
        let mut k = i;
        while k < cs.len() && cs[k] == ' ' {
            k += 1;
        }
        if cs.get(k) == Some(&'{') {
            if let Some(e) = matching_brace(cs, k) {
                // Braces stay only where the content is a macro argument.
                let group = needs_group(out);
                out.push(if group { '{' } else { ' ' });
                rewrite_into(&cs[k + 1..e], out, depth + 1);
                out.push(if group { '}' } else { ' ' });
                return e + 1;
            }
        }
        return i;
    }
    if DROP.contains(&n) {
        // `\left.` / `\right.` are invisible delimiters.
        if (n == "left" || n == "right") && cs.get(i) == Some(&'.') {
            i += 1;
        }
        if (n == "hspace" || n.ends_with("phantom")) && cs.get(i) == Some(&'{') {
            if let Some(e) = matching_brace(cs, i) {
                i = e + 1;
            }
        }
        out.push(' ');
        return i;
    }
    match command_replacement(n) {
        Some(r) => out.push_str(r),
        None => {
            out.push('\\');
            out.push_str(n);
            // Keep a letter right after a command from merging into its name.
            if cs.get(i).is_some_and(|d| d.is_ascii_alphabetic()) {
                out.push(' ');
            }
        }
    }
    i
}

/// Rewrites the escaped character `d` (`\d`), with `i` the index after it; returns the
/// index after what it consumed.
fn rewrite_escaped(cs: &[char], d: char, mut i: usize, out: &mut String) -> usize {
    match d {
        '{' => out.push('⦃'),
        '}' => out.push('⦄'),
        '%' => out.push('%'),
        '$' | '(' | ')' | '[' | ']' => {}
        '\\' => out.push_str("\\\\"),
        '&' => out.push('&'),
        '#' => out.push('#'),
        '_' => out.push('_'),
        '!' => {
            // `1,\!000` is a thousands separator.
            let prev_comma = out.ends_with(',');
            let mut k = i;
            while k < cs.len() && cs[k] == ' ' {
                k += 1;
            }
            let next_digits = cs
                .get(k..k + 3)
                .is_some_and(|w| w.iter().all(|d| d.is_ascii_digit()));
            if prev_comma && next_digits {
                out.pop();
                i = k;
            } else {
                out.push(' ');
            }
        }
        _ => out.push(' '),
    }
    i
}

/// The plain form of a LaTeX command that has one (`\le` → `≤`); `None` keeps the command.
fn command_replacement(n: &str) -> Option<&'static str> {
    match n {
        "dfrac" | "tfrac" | "cfrac" | "nicefrac" => Some("\\frac"),
        "dbinom" | "tbinom" | "binom" | "choose" => Some("\\binom"),
        "le" | "leq" | "leqslant" | "leqq" => Some("≤"),
        "ge" | "geq" | "geqslant" | "geqq" => Some("≥"),
        "lt" => Some("<"),
        "gt" => Some(">"),
        "ne" | "neq" => Some("≠"),
        "approx" | "simeq" | "sim" | "cong" | "equiv" => Some("≈"),
        "cdot" | "times" | "ast" | "bullet" => Some("*"),
        "div" => Some("/"),
        "circ" | "degree" => Some("°"),
        "infty" | "infin" => Some("∞"),
        "pm" => Some("±"),
        "mp" => Some("∓"),
        "cup" => Some("∪"),
        "cap" => Some("∩"),
        "in" => Some("∈"),
        "colon" => Some(":"),
        "dots" | "ldots" | "cdots" => Some("…"),
        "langle" => Some("("),
        "rangle" => Some(")"),
        "lbrace" => Some("⦃"),
        "rbrace" => Some("⦄"),
        "lvert" | "rvert" | "vert" | "mid" => Some("|"),
        "land" | "wedge" => Some(" and "),
        "lor" | "vee" => Some(" or "),
        "varnothing" | "emptyset" => Some("∅"),
        "Rightarrow" | "implies" | "rightarrow" | "to" | "Longrightarrow" => Some(" ⇒ "),
        _ => None,
    }
}

/// Rewrites the plain character `c`, with `i` the index after it; returns the index
/// after what it consumed.
fn rewrite_char(cs: &[char], c: char, mut i: usize, out: &mut String) -> usize {
    match c {
        '$' => {}
        '~' | '\n' | '\t' | '\r' => out.push(' '),
        '{' if cs.get(i) == Some(&',') && cs.get(i + 1) == Some(&'}') => {
            // `14{,}916`: thousands separator.
            i += 2;
        }
        '−' | '–' | '—' => out.push('-'),
        '×' | '·' | '⋅' => out.push('*'),
        '÷' => out.push('/'),
        '²' => out.push_str("^2"),
        '³' => out.push_str("^3"),
        '√' => out.push_str("\\sqrt"),
        'π' => out.push_str("\\pi "),
        '⩽' => out.push('≤'),
        '⩾' => out.push('≥'),
        '<' if cs.get(i) == Some(&'=') => {
            i += 1;
            out.push('≤');
        }
        '>' if cs.get(i) == Some(&'=') => {
            i += 1;
            out.push('≥');
        }
        '!' if cs.get(i) == Some(&'=') => {
            i += 1;
            out.push('≠');
        }
        '=' if cs.get(i) == Some(&'=') => {
            i += 1;
            out.push('=');
        }
        '\'' | '`' if last_non_space(out).is_none() => {}
        _ => out.push(c),
    }
    i
}

/// Full string normalisation: [`rewrite`], then degrees, collapse of spaces, outer
/// punctuation and whole-answer thousands separators.
pub fn normalize(s: &str) -> String {
    let mut t = rewrite(s);
    for pat in ["^{°}", "^°", "°"] {
        if t.contains(pat) {
            t = t.replace(pat, " ");
        }
    }
    t = t.replace("{ }", " ").replace("{}", "");
    let mut t = collapse_spaces(&t);
    // Trailing sentence punctuation.
    while let Some(last) = t.chars().last() {
        if matches!(last, '.' | ',' | ';' | ':') {
            t.pop();
            t = t.trim_end().to_string();
        } else {
            break;
        }
    }
    let t = t.trim().to_string();
    let t = strip_thousands(&t)
        .or_else(|| inline_thousands(&t))
        .unwrap_or(t);
    mixed_number(&t).unwrap_or(t)
}

/// `3 1/2` (the whole answer) as `3\frac{1}{2}`.
fn mixed_number(s: &str) -> Option<String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s),
    };
    let (w, frac) = body.split_once(' ')?;
    let (n, d) = frac.split_once('/')?;
    let digits = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    (digits(w) && digits(n) && digits(d)).then(|| format!("{sign}{w}\\frac{{{n}}}{{{d}}}"))
}

/// Collapses runs of whitespace into one space and trims.
pub fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut sp = false;
    for c in s.chars() {
        if c.is_whitespace() {
            sp = true;
        } else {
            if sp && !out.is_empty() {
                out.push(' ');
            }
            sp = false;
            out.push(c);
        }
    }
    out
}

/// `x = 1,000` / `$1,000,000 dollars`: a number with thousands separators inside a
/// longer answer, without them. Only when every comma of the answer belongs to that one
/// number and it stands outside brackets, so that `(1,100)`, `[1,100]` and lists keep
/// their commas.
fn inline_thousands(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let commas = b.iter().filter(|&&c| c == b',').count();
    if commas == 0 {
        return None;
    }
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        let starts = b[i].is_ascii_digit()
            && b[i] != b'0'
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.' || b[i - 1] == b','));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j - i > 3 {
            i = j;
            continue;
        }
        let mut groups = 0;
        while b.get(j) == Some(&b',')
            && b.get(j + 1..j + 4)
                .is_some_and(|w| w.iter().all(u8::is_ascii_digit))
            && !b.get(j + 4).is_some_and(u8::is_ascii_digit)
        {
            j += 4;
            groups += 1;
        }
        if groups > 0 {
            if groups != commas || depth != 0 {
                return None;
            }
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..i]);
            out.extend(s[i..j].chars().filter(|&c| c != ','));
            out.push_str(&s[j..]);
            return Some(out);
        }
        i = j;
    }
    None
}

/// `7,425,000` / `1 000` / `1,000.5` (the whole answer) without separators.
fn strip_thousands(s: &str) -> Option<String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s),
    };
    let (int, frac) = match body.find('.') {
        Some(k) => (&body[..k], &body[k..]),
        None => (body, ""),
    };
    if frac.len() > 1 && !frac[1..].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    for sep in [',', ' '] {
        let groups: Vec<&str> = int.split(sep).collect();
        if groups.len() < 2 {
            continue;
        }
        let ok = groups.iter().enumerate().all(|(k, g)| {
            g.chars().all(|c| c.is_ascii_digit())
                && if k == 0 {
                    (1..=3).contains(&g.len()) && !g.starts_with('0')
                } else {
                    g.len() == 3
                }
        });
        if ok {
            return Some(format!("{sign}{}{frac}", groups.concat()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites() {
        assert_eq!(normalize(r"\left( \frac{1}{3} \right)"), r"( \frac{1}{3} )");
        assert_eq!(normalize(r"$\dfrac{1}{2}$"), r"\frac{1}{2}");
        assert_eq!(normalize("7,425,000"), "7425000");
        assert_eq!(normalize(r"11,\! 111,\! 111,\! 100"), "11111111100");
        assert_eq!(normalize(r"14{,}916"), "14916");
        assert_eq!(normalize("x = 1,000"), "x = 1000");
        assert_eq!(normalize("(1,100)"), "(1,100)");
        assert_eq!(normalize("1,000, 2,000"), "1,000, 2,000");
        assert_eq!(normalize(r"90^\circ"), "90");
        assert_eq!(normalize(r"\{1,2\}"), "⦃1,2⦄");
        assert_eq!(normalize(r"x \leq 5."), "x ≤ 5");
        assert_eq!(normalize(r"\text{(C)}"), "(C)");
        assert_eq!(normalize(r"\boxed{\text{odd}}"), "odd");
        assert_eq!(normalize(r"\frac{1}{\mathrm{e}}"), r"\frac{1}{ e }");
    }
}
