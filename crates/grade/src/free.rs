//! Free-text answer extraction for responses that do not box their answer (base models,
//! hand-written solutions). The rules follow Math-Verify's documented extraction order,
//! re-implemented here without regular expressions:
//!
//! 1. `\boxed{}`: the last one, joined with the boxed answers right before it when only
//!    connectors (`,` `and` `or` `\quad` `\text{and}` math delimiters) separate them;
//! 2. "final answer" (`Final Answer: The final answer is X. I hope it is correct.`,
//!    `The final answer is X`): the first candidate after the last " is " of that
//!    sentence;
//! 3. "answer" (`answer: X`, `the answer is X`): the first candidate starting within
//!    [`ANSWER_WINDOW`] characters after the last "answer" that has one;
//! 4. otherwise the last candidate of the response.
//!
//! A candidate is a math segment (`$…$` and `\(…\)` on one line, `$$…$$` and `\[…\]`
//! on any), a plain number (thousands separators `1,000` / `1 000`, a decimal comma
//! `2,74`, a leading currency sign, a trailing `%`/`percent`; trailing units are left
//! out), or a plain arithmetic expression (`2/3`, `(1/2)*(4/3)`). Math segments joined by
//! `,`/`and`/`or` form one list answer. In a chosen segment an `=` chain keeps its last
//! member, and `c = v` with a constant `c` keeps `v` (`5 \times 6 = 30` gives `30`;
//! `x = 3` and `x + y = 1` stay whole). Chat-template markers (`<|im_start|>` …) end the
//! response. Only the last [`MAX_SCAN`] bytes are examined, so the work is linear in a
//! bounded length.

use crate::extract::extract_boxed;

/// Bytes at the end of a response that free-text extraction examines.
pub const MAX_SCAN: usize = 8_000;

/// Characters after "answer" within which a candidate must start.
pub const ANSWER_WINDOW: usize = 60;

/// Longest plain expression read outside math (chars).
const MAX_EXPR: usize = 200;

/// Most boxed answers joined into one list.
const MAX_JOIN: usize = 12;

#[derive(Debug, Clone)]
struct Cand {
    /// Char span in the scanned text.
    start: usize,
    end: usize,
    /// The answer text (segment content or canonical number).
    value: String,
    math: bool,
}

/// The answer of a free-text response, by the rules of the module docs; `None` when
/// nothing looks like an answer.
pub fn extract_free(text: &str) -> Option<String> {
    let text = cut_chat_markers(text);
    let text = tail(text, MAX_SCAN);
    if let Some(b) = boxed_run(text) {
        return Some(b);
    }
    let cs: Vec<char> = text.chars().collect();
    let cands = candidates(&cs);
    if let Some(a) = final_answer(&cs, &cands) {
        return Some(a);
    }
    if let Some(a) = answer_word(&cs, &cands) {
        return Some(a);
    }
    let last = cands.len().checked_sub(1)?;
    Some(finish(&cs, &cands, join_back(&cs, &cands, last), last))
}

fn cut_chat_markers(text: &str) -> &str {
    let mut end = text.len();
    for m in ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
        if let Some(k) = text.find(m) {
            end = end.min(k);
        }
    }
    &text[..end]
}

fn tail(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    let mut k = text.len() - n;
    while !text.is_char_boundary(k) {
        k += 1;
    }
    &text[k..]
}

/// Whether `gap` (text between two boxed answers) only connects them.
fn is_connector(gap: &str) -> bool {
    let mut t = gap.to_string();
    for pat in [
        r"\text{and}",
        r"\text{ and }",
        r"\text{or}",
        r"\text{ or }",
        r"\qquad",
        r"\quad",
        r"\(",
        r"\)",
        r"\[",
        r"\]",
        r"\,",
        r"\;",
        "$",
    ] {
        t = t.replace(pat, " ");
    }
    t.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .all(|w| w.is_empty() || w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or"))
}

/// The last `\boxed{}` answer joined with the boxed answers that directly precede it.
fn boxed_run(text: &str) -> Option<String> {
    let last = extract_boxed(text)?;
    // Starts of \boxed / \fbox, last first.
    let mut starts: Vec<usize> = text
        .match_indices(r"\boxed")
        .chain(text.match_indices(r"\fbox"))
        .map(|(i, _)| i)
        .collect();
    starts.sort_unstable();
    starts.reverse();
    starts.truncate(MAX_JOIN);
    let mut vals = vec![last];
    // End of the content of each boxed (the matching brace).
    let end_of = |i: usize| -> Option<usize> {
        let cs: Vec<char> = text[i..].chars().take(4000).collect();
        let open = cs.iter().position(|&c| c == '{')?;
        if cs[..open].iter().skip(5).any(|c| !c.is_alphabetic()) {
            return None;
        }
        let close = crate::normalize::matching_brace(&cs, open)?;
        let bytes: usize = cs[..=close].iter().map(|c| c.len_utf8()).sum();
        Some(i + bytes)
    };
    for w in starts.windows(2) {
        let (next, prev) = (w[0], w[1]);
        let Some(e) = end_of(prev) else { break };
        if e > next || !is_connector(&text[e..next]) {
            break;
        }
        match extract_boxed(&text[prev..e]) {
            Some(v) => vals.push(v),
            None => break,
        }
    }
    vals.reverse();
    Some(vals.join(", "))
}

/// For each position, the next index at or after it where `pat` starts (`$` only when
/// not escaped); `usize::MAX` when none. One backward pass.
fn next_table(cs: &[char], pat: &[char]) -> Vec<usize> {
    let mut t = vec![usize::MAX; cs.len() + 1];
    for i in (0..cs.len()).rev() {
        let here = cs[i..].starts_with(pat) && !(pat == ['$'] && i > 0 && cs[i - 1] == '\\');
        t[i] = if here { i } else { t[i + 1] };
    }
    t
}

/// A math delimiter pair: opener, closer, whether the segment may span lines, and the
/// next-closer table.
type Delim<'a> = (&'a [char], &'a [char], bool, Vec<usize>);

/// Math segments, numbers and plain expressions, in text order.
fn candidates(cs: &[char]) -> Vec<Cand> {
    let mut out = Vec::new();
    let n = cs.len();
    let next_nl = next_table(cs, &['\n']);
    let delims: Vec<Delim> = vec![
        (&['$', '$'], &['$', '$'], true, next_table(cs, &['$', '$'])),
        (
            &['\\', '['],
            &['\\', ']'],
            true,
            next_table(cs, &['\\', ']']),
        ),
        (
            &['\\', '('],
            &['\\', ')'],
            false,
            next_table(cs, &['\\', ')']),
        ),
        (&['$'], &['$'], false, next_table(cs, &['$'])),
    ];
    let mut i = 0;
    while i < n {
        let escaped = i > 0 && cs[i - 1] == '\\';
        let mut matched = false;
        if !escaped {
            for (open, close, multiline, next) in &delims {
                if !cs[i..].starts_with(open) {
                    continue;
                }
                if **open == ['$'] && i > 0 && cs[i - 1].is_ascii_digit() {
                    break;
                }
                let from = i + open.len();
                let j = next[from.min(n)];
                if j == usize::MAX || (!multiline && next_nl[from.min(n)] < j) {
                    continue;
                }
                let inner: String = cs[from..j].iter().collect();
                let mut stop = j + close.len();
                let mut value = inner.trim().to_string();
                if let Some(p) = percent_after(cs, stop) {
                    value.push_str("\\%");
                    stop = p;
                }
                if !value.is_empty() {
                    out.push(Cand {
                        start: i,
                        end: stop,
                        value,
                        math: true,
                    });
                }
                i = stop;
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        if let Some((end, value)) = number_or_expr(cs, i) {
            if !value.is_empty() {
                out.push(Cand {
                    start: i,
                    end,
                    value,
                    math: false,
                });
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// The position after a `%` / `percent` / `pct` that follows `at` (spaces allowed).
fn percent_after(cs: &[char], at: usize) -> Option<usize> {
    let mut k = at;
    while k < cs.len() && cs[k] == ' ' {
        k += 1;
    }
    if cs.get(k) == Some(&'%') {
        return Some(k + 1);
    }
    if cs.get(k..k + 2) == Some(&['\\', '%']) {
        return Some(k + 2);
    }
    for w in ["percentage", "percent", "pct"] {
        let wc: Vec<char> = w.chars().collect();
        if cs
            .get(k..k + wc.len())
            .is_some_and(|s| s.iter().zip(&wc).all(|(a, b)| a.eq_ignore_ascii_case(b)))
            && !cs
                .get(k + wc.len())
                .is_some_and(|c| c.is_ascii_alphabetic())
        {
            return Some(k + wc.len());
        }
    }
    None
}

fn is_currency(c: char) -> bool {
    matches!(c, '$' | '€' | '£' | '¥' | '₹' | '₽' | '₩')
}

/// Reads digits with thousands groups and a decimal part at `i`: (end, canonical).
fn number_at(cs: &[char], i: usize) -> Option<(usize, String)> {
    let mut k = i;
    let mut s = String::new();
    if cs.get(k) == Some(&'-') {
        s.push('-');
        k += 1;
    }
    let d0 = k;
    while k < cs.len() && cs[k].is_ascii_digit() {
        k += 1;
    }
    let int: String = cs[d0..k].iter().collect();
    if int.is_empty() {
        // ".5"
        if cs.get(k) == Some(&'.') && cs.get(k + 1).is_some_and(|c| c.is_ascii_digit()) {
            let mut j = k + 1;
            while j < cs.len() && cs[j].is_ascii_digit() {
                j += 1;
            }
            s.push('0');
            s.extend(&cs[k..j]);
            return Some((j, s));
        }
        return None;
    }
    s.push_str(&int);
    // Thousands groups: `,ddd` / ` ddd` after a first group of 1-3 digits.
    if (1..=3).contains(&int.len()) && !int.starts_with('0') {
        for sep in [',', ' '] {
            let mut j = k;
            let mut groups = 0;
            while cs.get(j) == Some(&sep)
                && cs
                    .get(j + 1..j + 4)
                    .is_some_and(|w| w.iter().all(|c| c.is_ascii_digit()))
                && !cs.get(j + 4).is_some_and(|c| c.is_ascii_digit())
            {
                s.extend(&cs[j + 1..j + 4]);
                j += 4;
                groups += 1;
            }
            if groups > 0 {
                k = j;
                break;
            }
        }
    }
    // Decimal part: `.dd`, or a decimal comma `,dd` that is not a thousands group.
    if let Some(&p) = cs.get(k) {
        if (p == '.' || p == ',') && cs.get(k + 1).is_some_and(|c| c.is_ascii_digit()) {
            let mut j = k + 1;
            while j < cs.len() && cs[j].is_ascii_digit() {
                j += 1;
            }
            if p == '.' || j - (k + 1) != 3 {
                s.push('.');
                s.extend(&cs[k + 1..j]);
                k = j;
            }
        }
    }
    Some((k, s))
}

fn is_op(c: char) -> bool {
    matches!(c, '+' | '-' | '*' | '/' | '^' | '×' | '÷')
}

/// A number (with currency and percent) or a plain arithmetic expression at `i`.
fn number_or_expr(cs: &[char], i: usize) -> Option<(usize, String)> {
    let prev = if i == 0 { None } else { Some(cs[i - 1]) };
    let anchored = |p: Option<char>| {
        p.is_none_or(|c| c.is_whitespace() || matches!(c, '=' | '(' | '*' | ':' | '"' | '\''))
            || p.is_some_and(is_currency)
    };
    let c = cs[i];
    if c == '(' && anchored(prev) {
        // "(1/2) * (4/3)": an expression that starts with a parenthesis.
        return expr_run(cs, i);
    }
    // Callers skip a run whose value comes back empty.
    let starts = c.is_ascii_digit()
        || (c == '-' || c == '.') && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit());
    if !starts || !anchored(prev) {
        return None;
    }
    if let Some(r) = expr_run(cs, i) {
        return Some(r);
    }
    let (end, mut s) = number_at(cs, i)?;
    let mut end = end;
    if let Some(p) = percent_after(cs, end) {
        s.push('%');
        end = p;
    }
    Some((end, s))
}

/// A run of numbers joined by operators and parentheses with at least one operator
/// between operands, e.g. `2/3` or `(1/2) * (4/3)`.
fn expr_run(cs: &[char], i: usize) -> Option<(usize, String)> {
    let mut k = i;
    let mut s = String::new();
    let mut ops = 0;
    let mut operands = 0;
    let mut depth = 0i32;
    let mut expect_operand = true;
    loop {
        let mut j = k;
        while j < cs.len() && cs[j] == ' ' {
            j += 1;
        }
        let Some(&c) = cs.get(j) else { break };
        if expect_operand {
            if c == '(' {
                depth += 1;
                s.push('(');
                k = j + 1;
                continue;
            }
            if c == '-'
                && cs
                    .get(j + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '(')
            {
                s.push('-');
                k = j + 1;
                continue;
            }
            let Some((e, num)) = number_at(cs, j) else {
                break;
            };
            // A thousands group inside an expression is ambiguous with a list.
            s.push_str(&num);
            operands += 1;
            k = e;
            expect_operand = false;
        } else {
            if c == ')' && depth > 0 {
                depth -= 1;
                s.push(')');
                k = j + 1;
                continue;
            }
            if is_op(c)
                && (c != '-' || j == k || cs.get(j + 1) == Some(&' ') || j > k)
                && cs[j + 1..]
                    .iter()
                    .find(|d| **d != ' ')
                    .is_some_and(|d| d.is_ascii_digit() || *d == '(' || *d == '-' || *d == '.')
            {
                s.push(match c {
                    '×' => '*',
                    '÷' => '/',
                    o => o,
                });
                ops += 1;
                k = j + 1;
                expect_operand = true;
                continue;
            }
            break;
        }
    }
    if k - i > MAX_EXPR {
        // Too long for an answer: the whole run is skipped.
        return Some((k, String::new()));
    }
    if ops == 0 || operands < 2 || depth != 0 || expect_operand {
        return None;
    }
    Some((k, s))
}

/// Index of the first candidate starting at or after char `pos`.
fn first_from(cands: &[Cand], pos: usize) -> Option<usize> {
    let k = cands.partition_point(|c| c.start < pos);
    (k < cands.len()).then_some(k)
}

fn lower_find_all(cs: &[char], pat: &str) -> Vec<usize> {
    let pc: Vec<char> = pat.chars().collect();
    if cs.len() < pc.len() {
        return Vec::new();
    }
    (0..=cs.len() - pc.len())
        .filter(|&i| {
            cs[i..i + pc.len()]
                .iter()
                .zip(&pc)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
        .collect()
}

/// Whether char `i` is inside a math candidate.
fn in_math(cands: &[Cand], i: usize) -> bool {
    // Candidates are sorted and disjoint: only the last one starting at or before `i`
    // can contain it.
    let k = cands.partition_point(|c| c.start <= i);
    k > 0 && cands[k - 1].math && i < cands[k - 1].end
}

/// End of the sentence that starts at `from`: a line break or a period followed by a
/// space outside math, or "I hope".
fn sentence_end(cs: &[char], cands: &[Cand], from: usize) -> usize {
    let hope = lower_find_all(&cs[from..], "i hope")
        .first()
        .map_or(cs.len(), |k| from + k);
    let mut i = from;
    while i < hope {
        if in_math(cands, i) {
            i += 1;
            continue;
        }
        if cs[i] == '\n' && i > from && !cs[from..i].iter().all(|c| c.is_whitespace()) {
            return i;
        }
        if cs[i] == '.' && cs.get(i + 1).is_none_or(|c| c.is_whitespace()) {
            return i;
        }
        i += 1;
    }
    hope
}

fn final_answer(cs: &[char], cands: &[Cand]) -> Option<String> {
    let at = *lower_find_all(cs, "final answer").last()?;
    let from = at + "final answer".len();
    let end = sentence_end(cs, cands, from);
    // After the last " is " outside math.
    let is_at = lower_find_all(&cs[from..end], " is ")
        .into_iter()
        .map(|k| from + k)
        .rfind(|&k| !in_math(cands, k))
        .map_or(from, |k| k + 4);
    match first_from(cands, is_at).filter(|&k| cands[k].start < end) {
        Some(k) => Some(finish(cs, cands, k, join_forward(cs, cands, k, end))),
        None => {
            let t: String = cs[is_at..end].iter().collect();
            let t = t.trim_start_matches([':', '*', ' ']).trim();
            let t = t.trim_end_matches(['.', '*', ' ']);
            (!t.is_empty() && t.chars().count() <= 60).then(|| t.to_string())
        }
    }
}

fn answer_word(cs: &[char], cands: &[Cand]) -> Option<String> {
    for at in lower_find_all(cs, "answer").into_iter().rev() {
        if in_math(cands, at) {
            continue;
        }
        let from = at + "answer".len();
        if let Some(k) = first_from(cands, from) {
            if cands[k].start <= from + ANSWER_WINDOW {
                let end = sentence_end(cs, cands, cands[k].start);
                return Some(finish(cs, cands, k, join_forward(cs, cands, k, end)));
            }
        }
    }
    None
}

/// Whether the text between candidates `a` and `b` only connects them.
fn connected(cs: &[char], cands: &[Cand], a: usize, b: usize) -> bool {
    let gap: String = cs[cands[a].end..cands[b].start].iter().collect();
    !gap.trim().is_empty() && is_connector(&gap)
        || gap.trim().is_empty() && cands[a].math && cands[b].math
}

/// The first index of the run of connected math candidates ending at `last`.
fn join_back(cs: &[char], cands: &[Cand], last: usize) -> usize {
    let mut first = last;
    while first > 0
        && last - first < MAX_JOIN
        && cands[first].math
        && cands[first - 1].math
        && connected(cs, cands, first - 1, first)
    {
        first -= 1;
    }
    first
}

/// The last index of the run of connected math candidates starting at `first`.
fn join_forward(cs: &[char], cands: &[Cand], first: usize, end: usize) -> usize {
    let mut last = first;
    while last + 1 < cands.len()
        && last - first < MAX_JOIN
        && cands[last + 1].start < end
        && cands[last].math
        && cands[last + 1].math
        && connected(cs, cands, last, last + 1)
    {
        last += 1;
    }
    last
}

/// The answer of candidates `first..=last`: one value, or a list of them.
fn finish(_cs: &[char], cands: &[Cand], first: usize, last: usize) -> String {
    let vals: Vec<String> = cands[first..=last]
        .iter()
        .map(|c| {
            if c.math {
                last_of_chain(&c.value)
            } else {
                c.value.clone()
            }
        })
        .collect();
    vals.join(", ")
}

/// Splits at top-level `=` signs that are not part of `<=`, `>=`, `!=`, `==`.
fn eq_parts(s: &str) -> Vec<String> {
    let cs: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut st = 0;
    for (i, &c) in cs.iter().enumerate() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '=' if depth == 0 => {
                let p = if i > 0 { cs[i - 1] } else { ' ' };
                let n = cs.get(i + 1).copied().unwrap_or(' ');
                if !matches!(p, '<' | '>' | '!' | '=' | '\\') && n != '=' {
                    parts.push(cs[st..i].iter().collect());
                    st = i + 1;
                }
            }
            _ => {}
        }
    }
    parts.push(cs[st..].iter().collect());
    parts
}

/// `a = b = v` gives `v`; `c = v` with a constant `c` gives `v`; lists and other
/// relations stay whole.
fn last_of_chain(s: &str) -> String {
    if s.contains(',') || s.contains(';') || s.contains("\\\\") {
        return s.to_string();
    }
    let parts = eq_parts(s);
    if parts.len() >= 3 {
        return parts[parts.len() - 1].trim().to_string();
    }
    if parts.len() == 2 && constant(&parts[0]) && !parts[1].trim().is_empty() {
        return parts[1].trim().to_string();
    }
    s.to_string()
}

/// Whether `s` is a constant expression (parses, no variables).
fn constant(s: &str) -> bool {
    let n = crate::normalize::normalize(s);
    if n.len() > crate::MAX_ANSWER_LEN {
        return false;
    }
    crate::expr::parse(&n).is_some_and(|e| {
        let mut v = std::collections::BTreeSet::new();
        crate::expr::vars(&e, &mut v);
        v.is_empty()
    })
}

#[cfg(test)]
#[path = "free_tests.rs"]
mod tests;
