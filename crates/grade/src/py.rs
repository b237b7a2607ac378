//! Small ports of Python built-ins that R-Zero's general-domain graders rely on, so that the
//! Rust rules give the reference's verdicts on the same strings.

/// Python's `str.isspace()` for one character: Unicode `White_Space` plus the four
/// information separators U+001C..U+001F (which Rust's `char::is_whitespace` leaves out).
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` (no argument).
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s[:-1]`: all but the last character (empty stays empty).
pub(crate) fn drop_last(s: &str) -> &str {
    match s.char_indices().next_back() {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Python's `float(s)` for `str` arguments: surrounding whitespace, a sign, `inf`,
/// `infinity`, `nan` (any case), decimal and exponent forms (`1.`, `.5`, `1e-3`), and single
/// underscores between digits (`1_000`). `None` where Python raises `ValueError`.
///
/// Departure: Python also accepts non-ASCII decimal digits (`'٣'`); they are rejected here.
pub(crate) fn float(s: &str) -> Option<f64> {
    let t = strip(s);
    if t.is_empty() || !t.is_ascii() {
        return None;
    }
    let b = t.as_bytes();
    let mut cleaned = String::with_capacity(t.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev = i.checked_sub(1).map(|j| b[j]);
            let next = b.get(i + 1).copied();
            if !(prev.is_some_and(|p| p.is_ascii_digit())
                && next.is_some_and(|n| n.is_ascii_digit()))
            {
                return None;
            }
            continue;
        }
        cleaned.push(c as char);
    }
    let body = cleaned.trim_start_matches(['+', '-']);
    if cleaned.len() - body.len() > 1 {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return cleaned.parse::<f64>().ok();
    }
    // Rust's parser accepts the same decimal grammar as Python's once the specials and
    // underscores are dealt with; reject anything with letters other than one exponent.
    if !body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_follows_python() {
        for (s, v) in [
            ("1", Some(1.0)),
            (" 2.5\n", Some(2.5)),
            ("1_000", Some(1000.0)),
            ("1e3", Some(1000.0)),
            ("-.5", Some(-0.5)),
            ("5.", Some(5.0)),
            ("+3", Some(3.0)),
            ("1e1_0", Some(1e10)),
            ("Infinity", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("_1", None),
            ("1_", None),
            ("1__0", None),
            ("1_.5", None),
            ("--1", None),
            ("", None),
            ("1,000", None),
            ("0x10", None),
            ("1 2", None),
            ("e5", None),
            (".", None),
            ("infinit", None),
        ] {
            assert_eq!(float(s), v, "{s:?}");
        }
        assert!(float("nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn strip_and_drop_last() {
        assert_eq!(strip("\u{1c} a \u{a0}"), "a");
        assert_eq!(drop_last("ab"), "a");
        assert_eq!(drop_last("é"), "");
        assert_eq!(drop_last(""), "");
    }
}
