//! `--force-answer` on `rzero generate` and `rzero eval` (qwen2-tiny fixture, a random model
//! that never boxes by itself): every completion ends with a closed `\boxed{}`, `generate`
//! reports the forced tokens, and eval's options record the setting.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn rzero(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .env("RZERO_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "rzero {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn fixture() -> PathBuf {
    testdata::model_dir("qwen2-tiny")
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn generate_with_force_answer_ends_every_completion_boxed() {
    let m = fixture();
    let m = m.to_str().unwrap();
    let base = [
        "generate",
        "--model",
        m,
        "--prompt",
        "What is 2 + 3?",
        "--max-new-tokens",
        "6",
        "--temperature",
        "1",
        "--n",
        "3",
        "--logprobs",
    ];
    let plain = lines(&rzero(&base));
    let forced = lines(&rzero(
        &[&base[..], &["--force-answer", "--force-answer-tokens", "4"]].concat(),
    ));
    assert_eq!((plain.len(), forced.len()), (3, 3));
    for (p, f) in plain.iter().zip(&forced) {
        assert!(p.get("forced").is_none());
        let text = f["completion"].as_str().unwrap();
        assert!(grade::extract_boxed(text).is_some(), "{text:?}");
        assert!(text.contains("Final answer: \\boxed{"), "{text:?}");
        let ids = f["completion_ids"].as_array().unwrap();
        let mask = f["forced"].as_array().unwrap();
        assert_eq!(mask.len(), ids.len());
        assert_eq!(f["logprobs"].as_array().unwrap().len(), ids.len());
        // the model's own response comes first, unchanged (same seed, same stream)
        let at = mask.iter().position(|x| x == true).unwrap();
        let own = &p["completion_ids"].as_array().unwrap();
        assert_eq!(&ids[..at], &own[..at]);
    }
    // A cue that opens no brace is refused, naming the field.
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .args(base)
        .args(["--force-answer", "--force-answer-cue", "Answer:"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("force_answer.cue"));
}

#[test]
fn eval_with_force_answer_has_an_answer_for_every_question() {
    let m = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ev");
    let args = [
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--bench",
        "gsm8k",
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "--force-answer-tokens",
        "2",
        "--force-answer",
        "--out",
        out.to_str().unwrap(),
    ];
    rzero(&args);
    let rows: Vec<Value> = std::fs::read_to_string(out.join("responses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    // The fixture's context is 256 tokens: a question whose prompt leaves no room for the
    // forced answer gets an empty response (as one longer than the context does); every
    // other response ends boxed and has an answer.
    let mut answered = 0;
    for r in &rows {
        let text = r["responses"][0].as_str().unwrap();
        if text.is_empty() {
            continue;
        }
        assert!(grade::extract_boxed(text).is_some(), "{text:?}");
        assert!(!r["answers"][0].is_null(), "{r}");
        answered += 1;
    }
    assert!(answered >= 2, "{rows:?}");
    let opts: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("options.json")).unwrap()).unwrap();
    assert!(opts.to_string().contains("force_answer"), "{opts}");
    // Resuming without forcing would mix two kinds of responses: refused.
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .args(&args[..args.len() - 5])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success(), "a resume with other options must fail");
}
