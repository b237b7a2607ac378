//! Property and adversarial tests: no call panics, and each comparison's work stays within
//! its budget (counted as evaluator nodes, [`crate::expr::work::nodes_visited`], not timed: a
//! count does not depend on the machine's load), on random strings and on hostile ones
//! (deep nesting, 100k-character inputs, unbalanced braces, huge exponents, `\frac`
//! chains, long lists). Compiled into the crate's unit tests (`lib.rs`), where the counter
//! is visible.

use crate::expr::work::nodes_visited;
use crate::{
    equivalent, extract_answer, extract_boxed, extract_free, group_answers, ExtractOptions, BUDGET,
};

/// Runs `f`, which makes at most `comparisons` comparisons, and checks that it visits at
/// most [`BUDGET`] evaluator nodes per comparison: each evaluation is charged to its
/// comparison's budget (a unit per node) before it runs.
fn bounded<T>(what: &str, input: &str, comparisons: u64, f: impl FnOnce() -> T) -> T {
    let before = nodes_visited();
    let r = f();
    let nodes = nodes_visited() - before;
    let shown: String = input.chars().take(80).collect();
    assert!(
        nodes <= comparisons * BUDGET,
        "{what} visited {nodes} nodes on {shown:?} ({} bytes)",
        input.len()
    );
    r
}

fn exercise(s: &str) {
    let all = ExtractOptions::all();
    extract_boxed(s);
    extract_answer(s, &all);
    extract_free(s);
    for other in ["1", r"\frac{1}{2}", "x+1", "(1,2)", s] {
        let r = bounded("equivalent", s, 1, || equivalent(s, other));
        let back = bounded("equivalent", s, 1, || equivalent(other, s));
        assert_eq!(
            r,
            back,
            "asymmetric on {:?}",
            s.chars().take(80).collect::<String>()
        );
    }
}

fn adversarial() -> Vec<String> {
    let mut v = vec![
        "(".repeat(5000) + "1" + &")".repeat(5000),
        "{".repeat(20000),
        "}".repeat(20000),
        r"\boxed{".repeat(10000),
        r"\frac{".repeat(300) + &"1}{2}".repeat(300),
        r"\frac{1}{".repeat(60) + "2" + &"}".repeat(60),
        "10^{10^{10}}".into(),
        "10^{10^{10^{10^{10}}}}".into(),
        "9^{9^{9^{9}}}".into(),
        "2^{2^{2^{2^{2^{2}}}}}".into(),
        "x".repeat(100_000),
        "1,".repeat(999) + "1",
        "1, ".repeat(600) + "1",
        r"\sqrt{".repeat(400) + "2" + &"}".repeat(400),
        r"\pm 1".repeat(300),
        "1".repeat(100_000),
        "(1,".repeat(400) + &")".repeat(400),
        r"\text{".repeat(500) + "a" + &"}".repeat(500),
        r"\begin{pmatrix}".to_string() + &"1 & 2 \\\\ ".repeat(400) + r"\end{pmatrix}",
        "1/".repeat(900) + "1",
        "x^".repeat(900) + "2",
        "1!".repeat(900),
        r"\left(".repeat(300) + "1" + &r"\right)".repeat(300),
        "$".repeat(50_000),
        "the answer is ".repeat(5000),
        "Final Answer: ".repeat(5000),
        "(A)".repeat(20000),
        r"\sin(".repeat(200) + "1" + &")".repeat(200),
        "0.".to_string() + &"3".repeat(5000),
        "1e99999".into(),
        r"\frac{1}{0}".into(),
        "[".repeat(3000) + &")".repeat(3000),
        "x = ".repeat(500) + "1",
        "x < ".repeat(500) + "1",
        r"\cup (1,2) ".repeat(300),
        "\u{0}\u{7f}\u{feff}é漢字🙂".repeat(1000),
        r"\\\\\\".repeat(5000),
        r"\(".repeat(20000),
        r"\[".repeat(20000),
        "$$".repeat(20000) + "$",
        "1 + ".repeat(20000),
        "(1/".repeat(10000),
        "answer 1 ".repeat(5000),
        "$1$ and ".repeat(5000),
        r"\boxed{1} and ".repeat(5000),
        "final answer is 1. ".repeat(5000),
        "1,000,".repeat(10000),
        "so the answer is $x = ".repeat(3000),
        r"\boxed".into(),
        r"\boxed{".into(),
        "\\".into(),
        "".into(),
    ];
    let n = v.len();
    for i in 0..n {
        v.push(format!(r"\boxed{{{}}}", v[i]));
    }
    v
}

#[test]
fn adversarial_inputs_are_bounded() {
    for s in adversarial() {
        exercise(&s);
    }
}

/// Deterministic xorshift; no external randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_strings_are_bounded() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "2",
        "9",
        ".",
        ",",
        " ",
        "x",
        "y",
        "e",
        "i",
        "+",
        "-",
        "*",
        "/",
        "^",
        "_",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "\\{",
        "\\}",
        "=",
        "<",
        ">",
        "\\le",
        "!",
        "|",
        "%",
        "\\frac",
        "\\sqrt",
        "\\pi",
        "\\pm",
        "\\infty",
        "\\cup",
        "\\text{",
        "\\boxed{",
        "\\left(",
        "\\right)",
        "&",
        "\\\\",
        "\\begin{pmatrix}",
        "\\end{pmatrix}",
        "^{",
        "\\sin",
        "\\log_",
        "\\binom",
        ":",
        ";",
        "and",
        "\\%",
        "^\\circ",
        "$",
        "10^{10^{",
        "A",
        "(B)",
        "cm",
        "\\cdot",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut group = Vec::new();
    for _ in 0..1500 {
        let len = 1 + rng.below(60);
        let s: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        exercise(&s);
        group.push(s);
    }
    // at most one comparison per pair
    let classes = bounded("group_answers", "200 random answers", 200 * 199 / 2, || {
        group_answers(&group[..200])
    });
    let mut seen: Vec<usize> = classes.concat();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "every index in exactly one class"
    );
}

#[test]
fn grouping_matches_pairwise_equivalence() {
    let answers: Vec<String> = [
        "1/2",
        "0.5",
        r"\frac{1}{2}",
        "2",
        r"\sqrt{4}",
        "x+1",
        "1+x",
        "(1,2)",
        r"\left(1, 2\right)",
        "A",
        "(A)",
        "odd",
        r"\text{odd}",
        r"\sin(\pi/6)",
        "50\\%",
        "",
        "2.0",
        "B",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let classes = group_answers(&answers);
    let expect: Vec<Vec<usize>> = vec![
        // 50% is 1/2.
        vec![0, 1, 2, 13, 14],
        vec![3, 4, 16],
        vec![5, 6],
        vec![7, 8],
        vec![9, 10],
        vec![11, 12],
        vec![15],
        vec![17],
    ];
    assert_eq!(classes, expect);
    for c in &classes {
        for w in c.windows(2) {
            assert!(equivalent(&answers[c[0]], &answers[w[1]]));
        }
    }
}
