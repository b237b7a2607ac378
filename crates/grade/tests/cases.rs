//! Data-driven equivalence cases: `tests/data/public.jsonl` (copied from public
//! answer-grader suites, source named per case), `tests/data/own.tsv` (our cases per
//! category: `pred<TAB>gold<TAB>expected<TAB>category`), and
//! `tests/data/known_failures.jsonl` (cases we get wrong, checked to stay wrong so that
//! a fix moves them back into the main files).

use grade::{equivalent, extract_answer, ExtractOptions};
use serde_json::Value;

#[derive(Debug, Clone)]
struct Case {
    pred: String,
    gold: String,
    expected: bool,
    pred_response: bool,
    gold_response: bool,
    origin: String,
}

fn data(name: &str) -> String {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {p}: {e}"))
}

fn jsonl(name: &str) -> Vec<Case> {
    data(name)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{name}:{}: field {k}", i + 1))
                    .to_string()
            };
            Case {
                pred: s("pred"),
                gold: s("gold"),
                expected: v["expected"]
                    .as_bool()
                    .unwrap_or_else(|| panic!("{name}:{}: expected", i + 1)),
                pred_response: v["pred_mode"].as_str() == Some("response"),
                gold_response: v["gold_mode"].as_str() == Some("response"),
                origin: format!("{name}:{} ({})", i + 1, s("category")),
            }
        })
        .collect()
}

fn tsv(name: &str) -> Vec<Case> {
    data(name)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(
                f.len() >= 4,
                "{name}:{}: want 4 tab-separated fields, got {}",
                i + 1,
                f.len()
            );
            let expected = match f[2] {
                "true" => true,
                "false" => false,
                o => panic!("{name}:{}: expected must be true/false, got {o}", i + 1),
            };
            Case {
                pred: f[0].to_string(),
                gold: f[1].to_string(),
                expected,
                pred_response: false,
                gold_response: false,
                origin: format!("{name}:{} ({})", i + 1, f[3]),
            }
        })
        .collect()
}

fn judge(c: &Case) -> bool {
    let all = ExtractOptions::all();
    let side = |s: &str, resp: bool| {
        if resp {
            extract_answer(s, &all)
        } else {
            Some(s.to_string())
        }
    };
    match (
        side(&c.pred, c.pred_response),
        side(&c.gold, c.gold_response),
    ) {
        (Some(p), Some(g)) => equivalent(&p, &g),
        _ => false,
    }
}

fn check(cases: &[Case]) -> Vec<String> {
    cases
        .iter()
        .filter(|c| judge(c) != c.expected)
        .map(|c| {
            format!(
                "{}: pred={:?} gold={:?} expected={}",
                c.origin, c.pred, c.gold, c.expected
            )
        })
        .collect()
}

#[test]
fn public_suites() {
    let cases = jsonl("public.jsonl");
    assert!(cases.len() >= 200, "only {} public cases", cases.len());
    let bad = check(&cases);
    assert!(
        bad.is_empty(),
        "{} of {} public cases fail:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn own_cases() {
    let cases = tsv("own.tsv");
    assert!(cases.len() >= 200, "only {} own cases", cases.len());
    let bad = check(&cases);
    assert!(
        bad.is_empty(),
        "{} of {} own cases fail:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn equivalence_is_symmetric_on_answer_cases() {
    let cases = tsv("own.tsv");
    for c in &cases {
        assert_eq!(
            equivalent(&c.pred, &c.gold),
            equivalent(&c.gold, &c.pred),
            "{}",
            c.origin
        );
    }
}

#[test]
fn known_failures_still_fail() {
    let cases = jsonl("known_failures.jsonl");
    let fixed: Vec<String> = cases
        .iter()
        .filter(|c| judge(c) == c.expected)
        .map(|c| format!("{}: {:?} vs {:?}", c.origin, c.pred, c.gold))
        .collect();
    assert!(
        fixed.is_empty(),
        "now passing, move back to the main suite:\n{}",
        fixed.join("\n")
    );
}
