//! `rzero bench grade`: grading throughput (grades/s on 1 and 2 threads) and the worst
//! single-case time over a case file (by default the grade crate's test cases), with
//! correctness against the expected labels. When `python3 -c "import math_verify,
//! mathruler"` works, the same cases go through `bench/grade_peers.py` in the same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Arguments of `rzero bench grade`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Case file (JSONL: `pred`, `gold`, `expected`, optional `pred_mode`/`gold_mode`
    /// = "response"). Default: crates/grade/tests/data/{public,known_failures,nemo_skills,
    /// qwen25_math}.jsonl + own.tsv.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Passes over the cases for the throughput figure.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// Skip the Python peers.
    #[arg(long)]
    pub no_peers: bool,
}

#[derive(Clone)]
struct Case {
    pred: String,
    gold: String,
    expected: bool,
    pred_response: bool,
    gold_response: bool,
}

fn load_jsonl(p: &Path, out: &mut Vec<Case>) -> anyhow::Result<()> {
    for (i, row) in crate::io::read_jsonl(Some(p))?.into_iter().enumerate() {
        let s = |k: &str| -> anyhow::Result<String> {
            row.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("{}: record {}: field `{k}`", p.display(), i + 1))
        };
        out.push(Case {
            pred: s("pred")?,
            gold: s("gold")?,
            expected: row
                .get("expected")
                .and_then(Value::as_bool)
                .with_context(|| format!("{}: record {}: field `expected`", p.display(), i + 1))?,
            pred_response: row.get("pred_mode").and_then(Value::as_str) == Some("response"),
            gold_response: row.get("gold_mode").and_then(Value::as_str) == Some("response"),
        });
    }
    Ok(())
}

fn load_tsv(p: &Path, out: &mut Vec<Case>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 3 {
            bail!("{}:{}: want pred<TAB>gold<TAB>expected", p.display(), i + 1);
        }
        out.push(Case {
            pred: f[0].into(),
            gold: f[1].into(),
            expected: f[2] == "true",
            pred_response: false,
            gold_response: false,
        });
    }
    Ok(())
}

fn judge(c: &Case) -> bool {
    let all = grade::ExtractOptions::all();
    let side = |s: &str, r: bool| {
        if r {
            grade::extract_answer(s, &all)
        } else {
            Some(s.to_string())
        }
    };
    match (
        side(&c.pred, c.pred_response),
        side(&c.gold, c.gold_response),
    ) {
        (Some(p), Some(g)) => grade::equivalent(&p, &g),
        _ => false,
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grade/tests/data")
}

fn peers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/grade_peers.py")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cases = Vec::new();
    let source = match &args.cases {
        Some(p) => {
            load_jsonl(p, &mut cases)?;
            p.display().to_string()
        }
        None => {
            let d = data_dir();
            for f in [
                "public.jsonl",
                "known_failures.jsonl",
                "nemo_skills.jsonl",
                "qwen25_math.jsonl",
            ] {
                load_jsonl(&d.join(f), &mut cases)?;
            }
            load_tsv(&d.join("own.tsv"), &mut cases)?;
            "crates/grade/tests/data (public, known_failures, nemo_skills, qwen25_math .jsonl + own.tsv)".into()
        }
    };
    if cases.is_empty() {
        bail!("no cases in {source}");
    }
    // Correctness and the worst single case (each case timed alone, best of 3 runs).
    let mut correct = 0;
    let mut worst_ms = 0f64;
    for c in &cases {
        let mut best = f64::INFINITY;
        let mut r = false;
        for _ in 0..3 {
            let t = Instant::now();
            r = judge(c);
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        worst_ms = worst_ms.max(best);
        correct += (r == c.expected) as usize;
    }
    let over_50ms = cases
        .iter()
        .filter(|c| {
            let t = Instant::now();
            judge(c);
            t.elapsed().as_secs_f64() > 0.05
        })
        .count();
    // Throughput on 1 and 2 threads.
    let rate = |threads: usize| -> f64 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                let cases = &cases;
                let repeat = args.repeat;
                s.spawn(move || {
                    let mut n = 0usize;
                    for _ in 0..repeat {
                        for c in cases.iter().skip(k).step_by(threads) {
                            n += judge(c) as usize;
                        }
                    }
                    std::hint::black_box(n);
                });
            }
        });
        (cases.len() * args.repeat) as f64 / t.elapsed().as_secs_f64()
    };
    let gps1 = rate(1);
    let gps2 = rate(2);
    let mut result = json!({
        "tool": "rzero-grade",
        "cases": cases.len(),
        "source": source,
        "correct": correct,
        "accuracy": correct as f64 / cases.len() as f64,
        "grades_per_s_1thread": gps1,
        "grades_per_s": gps2,
        "threads": 2,
        "worst_ms": worst_ms,
        "over_50ms": over_50ms,
    });
    if !args.no_peers {
        result["peers"] = run_peers(&cases)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!("rzero grade: {} cases from {source}", cases.len());
        println!(
            "  correct {correct}/{} ({:.1}%), {gps2:.0} grades/s on 2 threads ({gps1:.0} on 1), worst case {worst_ms:.3} ms, {over_50ms} over 50 ms",
            cases.len(),
            100.0 * correct as f64 / cases.len() as f64
        );
        match &result.get("peers") {
            Some(Value::Object(p)) => {
                for (name, v) in p {
                    println!(
                        "  {name}: correct {}/{}, {:.1} grades/s, worst case {:.1} ms, {} over 50 ms",
                        v["correct"], v["cases"], v["grades_per_s"].as_f64().unwrap_or(0.0),
                        v["worst_ms"].as_f64().unwrap_or(0.0), v["over_50ms"]
                    );
                }
            }
            Some(Value::String(why)) => println!("  peers: {why}"),
            _ => {}
        }
    }
    Ok(())
}

fn run_peers(cases: &[Case]) -> anyhow::Result<Value> {
    // The peer venv of scripts/py-venv.sh when RZERO_PYTHON names it.
    let python = std::env::var("RZERO_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import math_verify, mathruler.grader"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return Ok(Value::String(format!(
            "skipped: {python} without math-verify==0.7.0 and mathruler==0.1.0"
        )));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cases.jsonl");
    let mut text = String::new();
    for c in cases {
        let mode = |r: bool| if r { "response" } else { "answer" };
        text.push_str(&serde_json::to_string(&json!({
            "pred": c.pred, "gold": c.gold, "expected": c.expected,
            "pred_mode": mode(c.pred_response), "gold_mode": mode(c.gold_response),
        }))?);
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    let out = std::process::Command::new(&python)
        .arg(peers_script())
        .arg("--cases")
        .arg(&path)
        .output()
        .context("running bench/grade_peers.py")?;
    if !out.status.success() {
        bail!(
            "bench/grade_peers.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing bench/grade_peers.py output")
}
