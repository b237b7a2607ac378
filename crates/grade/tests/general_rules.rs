//! The general-domain rules against the reference's own verdicts:
//! `tests/data/general/{mmlu_pro,bbeh}_cases.jsonl`, written by `gen_cases.py` there, which
//! runs R-Zero's `extract_solution`, `get_prediction` (before its random guess) and BBEH's
//! `evaluate_correctness` copied verbatim. Every intermediate value is compared too.

use grade::{bbeh, mmlu_pro, solution};
use serde_json::Value;

fn cases(name: &str) -> Vec<Value> {
    let p = format!("{}/tests/data/general/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {p}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{p}:{}: {e}", i + 1)))
        .collect()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} of {v}"))
}

#[test]
fn mmlu_pro_matches_the_reference() {
    let cases = cases("mmlu_pro_cases.jsonl");
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut bad = Vec::new();
    let (mut none, mut some, mut eq) = (0, 0, 0);
    for c in &cases {
        let resp = s(c, "response");
        let sol = solution::extract_solution(resp);
        let pred = mmlu_pro::prediction(resp).map(String::from);
        let v = mmlu_pro::grade(resp, s(c, "answer"), None);
        let want_sol = c["solution"].as_str().map(String::from);
        let want_pred = c["prediction"].as_str().map(String::from);
        let want_eq = c["equal"].as_bool().unwrap();
        if sol != want_sol || pred != want_pred || v.correct != want_eq {
            bad.push(format!(
                "{}: {resp:?}: got ({sol:?}, {pred:?}, {}), reference ({want_sol:?}, {want_pred:?}, {want_eq})",
                s(c, "what"),
                v.correct
            ));
        }
        none += want_pred.is_none() as usize;
        some += want_pred.is_some() as usize;
        eq += want_eq as usize;
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    // The cases exercise both extraction outcomes and both verdicts.
    assert!(none >= 10 && some >= 10 && eq >= 10 && cases.len() - eq >= 10);
}

#[test]
fn bbeh_matches_the_reference() {
    let cases = cases("bbeh_cases.jsonl");
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut bad = Vec::new();
    for c in &cases {
        let resp = s(c, "response");
        let answer = s(c, "answer");
        let (sol, eq) = bbeh::grade(resp, answer);
        let pred = bbeh::preprocess_sample(sol.as_deref().unwrap_or(""));
        let reference = bbeh::preprocess_reference(answer);
        let fm = bbeh::fuzzy_match(s(c, "prediction"), s(c, "reference"));
        let want_sol = c["solution"].as_str().map(String::from);
        let want_eq = c["equal"].as_bool().unwrap();
        if sol != want_sol
            || pred != s(c, "prediction")
            || reference != s(c, "reference")
            || eq != want_eq
            || fm != want_eq
        {
            bad.push(format!(
                "{}: {resp:?} vs {answer:?}: got ({sol:?}, {pred:?}, {reference:?}, {eq}, fuzzy {fm}), reference ({want_sol:?}, {:?}, {:?}, {want_eq})",
                s(c, "what"),
                s(c, "prediction"),
                s(c, "reference"),
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    let eq = cases.iter().filter(|c| c["equal"] == true).count();
    assert!(eq >= 10 && cases.len() - eq >= 10);
}

#[test]
fn guessing_is_seeded_and_only_when_no_letter() {
    let v = mmlu_pro::grade(r"\boxed{B}", "B", Some(3));
    assert_eq!((v.prediction, v.guess, v.correct), (Some('B'), None, true));
    let a = mmlu_pro::grade("no idea", "C", Some(11));
    let b = mmlu_pro::grade("no idea", "C", Some(11));
    assert_eq!(a, b);
    assert!(a.prediction.is_none() && a.guess.is_some());
    assert_eq!(a.correct, a.guess == Some('C'));
    // About a tenth of guesses are right.
    let right = (0..1000u64)
        .filter(|&s| mmlu_pro::grade("", "D", Some(s)).correct)
        .count();
    assert!((60..=140).contains(&right), "{right}");
}
