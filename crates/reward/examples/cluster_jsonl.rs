//! Clusters the `question` field of a JSONL file (stdin) and prints one JSON object with
//! the labels, timings and (with `--distances`) the condensed BLEU distances; used to
//! cross-check against `bench/cluster_peer.py` without building the candle-based CLI.

use std::io::Read;
use std::time::Instant;

fn main() {
    let with_dist = std::env::args().any(|a| a == "--distances");
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .expect("reading stdin");
    let questions: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            v["question"].as_str().expect("question field").to_string()
        })
        .collect();
    let t0 = Instant::now();
    let dist = match std::env::var("DENSE_DF").ok().and_then(|v| v.parse().ok()) {
        Some(df) => reward::distance::bleu_distances_tuned(&questions, df),
        None => reward::distance::bleu_distances(&questions),
    };
    let t1 = Instant::now();
    let dump = with_dist.then(|| dist.as_slice().to_vec());
    let labels = reward::cluster::cluster_distances(dist, 0.5);
    let t2 = Instant::now();
    let out = serde_json::json!({
        "n": questions.len(),
        "bleu_seconds": (t1 - t0).as_secs_f64(),
        "cluster_seconds": (t2 - t1).as_secs_f64(),
        "labels": labels,
        "distances": dump,
    });
    println!("{out}");
}
