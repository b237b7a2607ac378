//! Agreement with the NLTK / scikit-learn reference numbers in `tests/fixtures/bleu` (made
//! by `tests/fixtures/bleu/generate.py` with nltk 3.9.1 and scikit-learn 1.7.0, the formulas of
//! R-Zero's `caller_penalty.py`; see that folder's README).

use reward::bleu::sentence_bleu_str;
use reward::cluster::{cluster_questions, repetition_penalties, DEFAULT_THRESHOLD};
use reward::distance::{bleu_distances, bleu_distances_simple};
use serde_json::Value;

fn fixture(name: &str) -> Vec<Value> {
    let path = testdata::path(&format!("bleu/{name}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("fixture {}: a line is not JSON: {e}", path.display()))
        })
        .collect()
}

/// Two labelings describe the same partition.
fn same_partition(a: &[usize], b: &[usize]) -> bool {
    use std::collections::HashMap;
    let (mut ab, mut ba) = (HashMap::new(), HashMap::new());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}

#[test]
fn pairs_200_match_nltk() {
    let rows = fixture("pairs_200.jsonl");
    assert_eq!(rows.len(), 200);
    let mut worst = 0f64;
    for (k, r) in rows.iter().enumerate() {
        let a = r["a"].as_str().unwrap();
        let b = r["b"].as_str().unwrap();
        let ab = r["bleu"].as_f64().unwrap();
        let ba = r["bleu_ba"].as_f64().unwrap();
        // `bleu` = sentence_bleu([b.split()], a.split()): a is the hypothesis.
        let got_ab = sentence_bleu_str(b, a);
        let got_ba = sentence_bleu_str(a, b);
        worst = worst.max((got_ab - ab).abs()).max((got_ba - ba).abs());
        assert!(
            (got_ab - ab).abs() <= 1e-9,
            "pair {k} ({}): {got_ab} vs {ab}",
            r["kind"]
        );
        assert!(
            (got_ba - ba).abs() <= 1e-9,
            "pair {k} swapped ({}): {got_ba} vs {ba}",
            r["kind"]
        );
        // The all-pairs fast path on the batch [a, b] gives the same value.
        let batch = vec![a.to_string(), b.to_string()];
        assert_eq!(bleu_distances(&batch).get(0, 1), 1.0 - got_ab);
    }
    eprintln!("pairs_200: max |rzero - nltk| = {worst:e}");
}

#[test]
fn cluster_64_matches_sklearn() {
    let rows = fixture("cluster_64.jsonl");
    let questions: Vec<String> = rows
        .iter()
        .map(|r| r["question"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<usize> = rows
        .iter()
        .map(|r| r["label"].as_u64().unwrap() as usize)
        .collect();
    let labels = cluster_questions(&questions, DEFAULT_THRESHOLD);
    assert!(
        same_partition(&labels, &want),
        "partition differs:\n{labels:?}\n{want:?}"
    );
    let penalties = repetition_penalties(&labels);
    for (r, p) in rows.iter().zip(&penalties) {
        assert_eq!(*p, r["penalty"].as_f64().unwrap());
    }
    // Labels numbered by first appearance.
    let mut next = 0;
    for &l in &labels {
        assert!(l <= next);
        if l == next {
            next += 1;
        }
    }
    assert_eq!(next, 45, "the fixture has 45 clusters");
}

#[test]
fn cluster_64_pair_distances_match_nltk() {
    let rows = fixture("cluster_64.jsonl");
    let pairs = fixture("cluster_64_bleu.jsonl");
    let questions: Vec<String> = rows
        .iter()
        .map(|r| r["question"].as_str().unwrap().to_string())
        .collect();
    let fast = bleu_distances(&questions);
    let simple = bleu_distances_simple(&questions);
    assert_eq!(pairs.len(), 64 * 63 / 2);
    for p in &pairs {
        let (i, j) = (
            p["i"].as_u64().unwrap() as usize,
            p["j"].as_u64().unwrap() as usize,
        );
        let d = p["distance"].as_f64().unwrap();
        assert!(
            (fast.get(i, j) - d).abs() <= 1e-12,
            "({i},{j}): {} vs {d}",
            fast.get(i, j)
        );
        assert_eq!(fast.get(i, j).to_bits(), simple.get(i, j).to_bits());
    }
}
