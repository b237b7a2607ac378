//! The reference's evaluation rule (`evaluation/datasets_loader.py`:
//! `re.search(r"(?i)\\boxed\s*{([^\n]+)}", response)`, then `math_verify.parse` of the group)
//! against rzero's `first-boxed` and `last-boxed` rules. The "regex group" column is what
//! Python's `re.search` returns for each response (checked with CPython 3); the expected
//! `first-boxed` answer is the part of it that `math_verify.parse` reads (the first box's
//! content when the box closes on its line).

use grade::{equivalent, extract_first_boxed, AnswerRule};

/// (response, regex group or None, first-boxed answer, last-boxed answer)
type Case = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const CASES: &[Case] = &[
    // Two boxes on one line: the group runs to the line's last `}`; parse reads the first.
    (
        r"so \boxed{3} and then \boxed{4}",
        Some(r"3} and then \boxed{4"),
        Some("3"),
        Some("4"),
    ),
    // Two boxes on two lines: the first line's box.
    (
        "first \\boxed{3}\nlater \\boxed{4}",
        Some("3"),
        Some("3"),
        Some("4"),
    ),
    (
        r"\boxed{\frac{1}{2}}.",
        Some(r"\frac{1}{2}"),
        Some(r"\frac{1}{2}"),
        Some(r"\frac{1}{2}"),
    ),
    (r"$\boxed{12}$ is it", Some("12"), Some("12"), Some("12")),
    // `(?i)` and `\s*`: upper case and a space before the brace.
    (r"\BOXED {7}", Some("7"), Some("7"), None),
    ("\\boxed\n{5}", Some("5"), Some("5"), Some("5")),
    ("no box", None, None, None),
    // `[^\n]+` needs one character before the `}`.
    (r"\boxed{}", None, None, Some("")),
    // A box that does not close on its line is skipped when its line has no later `}` ...
    (
        "\\boxed{\n3}\nlater \\boxed{4}",
        Some("4"),
        Some("4"),
        Some("4"),
    ),
    // ... and read up to the line's last `}` when it has one.
    (
        "\\boxed{\\frac{1}{2}\nlater \\boxed{4}",
        Some(r"\frac{1}{2"),
        Some(r"\frac{1}{2"),
        Some("4"),
    ),
    (r"\fbox{7}", None, None, Some("7")),
    (r"\boxed{3", None, None, None),
    (
        r"\boxed{a}{b} more}",
        Some("a}{b} more"),
        Some("a"),
        Some("a"),
    ),
    (
        r"\boxed{\{1,2\}}",
        Some(r"\{1,2\}"),
        Some(r"\{1,2\}"),
        Some(r"\{1,2\}"),
    ),
    // `\boxedx` is not `\boxed\s*{`.
    (r"\boxedx{1} \boxed{2}", Some("2"), Some("2"), Some("2")),
];

#[test]
fn first_and_last_boxed_follow_the_reference_cases() {
    for (i, (resp, group, first, last)) in CASES.iter().enumerate() {
        let got = extract_first_boxed(resp);
        assert_eq!(got.as_deref(), *first, "case {i} first-boxed: {resp:?}");
        assert_eq!(
            AnswerRule::FirstBoxed.extract(resp).as_deref(),
            *first,
            "case {i}"
        );
        assert_eq!(
            AnswerRule::LastBoxed.extract(resp).as_deref(),
            *last,
            "case {i} last-boxed: {resp:?}"
        );
        // An answer exactly when the reference's regex matches, and then a prefix of its group.
        assert_eq!(got.is_some(), group.is_some(), "case {i}: {resp:?}");
        if let (Some(g), Some(a)) = (group, &got) {
            assert!(
                g.starts_with(a.as_str()),
                "case {i}: {a:?} is not a prefix of {g:?}"
            );
        }
    }
}

#[test]
fn the_rule_changes_the_verdict() {
    // A model that boxes a first guess and then a corrected answer on a later line: the
    // reference grades the first (wrong) box, the last-boxed rule the correction.
    let resp = "Maybe \\boxed{5}.\nWait, recheck: the answer is \\boxed{6}.";
    let gold = "6";
    let first = AnswerRule::FirstBoxed.extract(resp).unwrap();
    let last = AnswerRule::LastBoxed.extract(resp).unwrap();
    assert!(!equivalent(&first, gold));
    assert!(equivalent(&last, gold));
}

#[test]
fn linear_on_hostile_input() {
    // Many boxes on one line with no closing brace: each line is scanned once.
    let s = r"\boxed{".repeat(200_000);
    let t = std::time::Instant::now();
    assert_eq!(extract_first_boxed(&s), None);
    let many_lines = "\\boxed{x\n".repeat(200_000);
    assert_eq!(extract_first_boxed(&many_lines), None);
    assert!(t.elapsed().as_secs_f64() < 2.0, "took {:?}", t.elapsed());
}
