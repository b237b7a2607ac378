//! `rzero grade --rules mmlu_pro|bbeh`: JSONL in, JSONL out, on the reference-generated rule
//! cases of the grade crate (`crates/grade/tests/data/general/`): every output line carries
//! the reference's verdict (`equal`) and, for mmlu_pro, its letter before any guess
//! (`prediction`); input fields are kept; a record without `response` is an error naming it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn cases(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../grade/tests/data/general")
        .join(name)
}

fn read(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn grade(rules: &str, input: &std::path::Path, extra: &[&str]) -> (bool, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .args(["grade", "--rules", rules, "--input"])
        .arg(input)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let rows = if out.exists() { read(&out) } else { Vec::new() };
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        rows,
    )
}

#[test]
fn mmlu_pro_rules_give_the_reference_verdicts() {
    let input = cases("mmlu_pro_cases.jsonl");
    let want = read(&input);
    let (ok, err, got) = grade("mmlu_pro", &input, &[]);
    assert!(ok, "{err}");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["prediction"], w["prediction"], "{}", w["what"]);
        assert_eq!(g["equal"], w["equal"], "{}", w["what"]);
        assert_eq!(g["what"], w["what"], "input fields kept");
        assert!(g.get("guess").is_none());
    }
    // With --guess, exactly the lines without a letter get a guess; equal follows it.
    let (ok, err, got) = grade("mmlu_pro", &input, &["--guess", "--seed", "3"]);
    assert!(ok, "{err}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            g.get("guess").is_some(),
            w["prediction"].is_null(),
            "{}",
            w["what"]
        );
        if let Some(l) = g.get("guess") {
            assert_eq!(g["equal"].as_bool().unwrap(), l == &w["answer"]);
        }
    }
}

#[test]
fn bbeh_rules_give_the_reference_verdicts() {
    let input = cases("bbeh_cases.jsonl");
    let want = read(&input);
    let (ok, err, got) = grade("bbeh", &input, &[]);
    assert!(ok, "{err}");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["equal"], w["equal"], "{}", w["what"]);
        assert_eq!(g["extracted"], w["solution"], "{}", w["what"]);
    }
}

#[test]
fn a_record_without_response_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"response\": \"\\\\boxed{A}\", \"answer\": \"A\"}\n{\"answer\": \"B\"}\n",
    )
    .unwrap();
    let (ok, err, rows) = grade("bbeh", &input, &[]);
    assert!(!ok && rows.is_empty(), "no half-written output");
    assert!(
        err.contains("record 2") && err.contains("response"),
        "{err}"
    );
}
