//! Prints how many cases of each test-data file and category the grader gets right,
//! with response sides extracted by each mode (boxed, fallbacks, free).
//!
//! `cargo run -p grade --example grade_report [--by-category]`

use std::collections::BTreeMap;

use grade::{equivalent, ExtractMode};
use serde_json::Value;

struct Case {
    file: String,
    category: String,
    pred: String,
    gold: String,
    expected: bool,
    pred_response: bool,
    gold_response: bool,
}

fn load(dir: &str, name: &str, out: &mut Vec<Case>) {
    let p = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {p}: {e}"));
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        if name.ends_with(".tsv") {
            let f: Vec<&str> = l.split('\t').collect();
            out.push(Case {
                file: name.into(),
                category: f.get(3).unwrap_or(&"?").to_string(),
                pred: f[0].into(),
                gold: f[1].into(),
                expected: f[2] == "true",
                pred_response: false,
                gold_response: false,
            });
            continue;
        }
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{p}:{}: {e}", i + 1));
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        out.push(Case {
            file: name.into(),
            category: s("category"),
            pred: s("pred"),
            gold: s("gold"),
            expected: v["expected"].as_bool().unwrap_or(false),
            pred_response: s("pred_mode") == "response",
            gold_response: s("gold_mode") == "response",
        });
    }
}

fn judge(c: &Case, mode: ExtractMode) -> bool {
    let side = |s: &str, r: bool| {
        if r {
            mode.extract(s)
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

fn main() {
    let by_cat = std::env::args().any(|a| a == "--by-category");
    let show = std::env::args().any(|a| a == "--failures");
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut cases = Vec::new();
    for f in [
        "public.jsonl",
        "known_failures.jsonl",
        "own.tsv",
        "nemo_skills.jsonl",
        "qwen25_math.jsonl",
    ] {
        if std::path::Path::new(&format!("{dir}/{f}")).exists() {
            load(&dir, f, &mut cases);
        }
    }
    let modes = [
        ExtractMode::Boxed,
        ExtractMode::Fallbacks,
        ExtractMode::Free,
    ];
    let mut rows: BTreeMap<(String, String), [usize; 4]> = BTreeMap::new();
    let mut resp: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for c in &cases {
        let key = (
            c.file.clone(),
            if by_cat {
                c.category.clone()
            } else {
                String::new()
            },
        );
        let r = rows.entry(key).or_default();
        r[0] += 1;
        for (k, m) in modes.iter().enumerate() {
            let ok = judge(c, *m) == c.expected;
            r[k + 1] += ok as usize;
            let shown_mode = if c.pred_response || c.gold_response {
                2
            } else {
                1
            };
            if show && !ok && k == shown_mode {
                let ext = |s: &str, resp: bool| {
                    if resp {
                        format!("{:?}", m.extract(s))
                    } else {
                        format!("{s:?}")
                    }
                };
                println!(
                    "FAIL {} [{}] {m}: pred={} gold={} expected={}",
                    c.file,
                    c.category,
                    ext(&c.pred, c.pred_response),
                    ext(&c.gold, c.gold_response),
                    c.expected
                );
            }
        }
        if c.pred_response {
            let boxed = if c.pred.contains("\\boxed") {
                "with \\boxed"
            } else {
                "no \\boxed"
            };
            for key in ["all".to_string(), boxed.to_string()] {
                let r = resp.entry(key).or_default();
                r[0] += 1;
                for (k, m) in modes.iter().enumerate() {
                    r[k + 1] += (judge(c, *m) == c.expected) as usize;
                }
            }
        }
    }
    println!(
        "{:<24} {:<34} {:>5} {:>7} {:>9} {:>6}",
        "file", "category", "cases", "boxed", "fallbacks", "free"
    );
    for ((f, cat), r) in &rows {
        println!(
            "{f:<24} {cat:<34} {:>5} {:>7} {:>9} {:>6}",
            r[0], r[1], r[2], r[3]
        );
    }
    println!("\nresponse-mode predictions (agreement with the labels):");
    for (k, r) in &resp {
        let pct = |x: usize| x as f64 / r[0] as f64;
        println!(
            "  {k:<14} {:>4} cases: boxed {:.3}, fallbacks {:.3}, free {:.3}",
            r[0],
            pct(r[1]),
            pct(r[2]),
            pct(r[3])
        );
    }
}
