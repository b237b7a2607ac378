//! `--device` and `--dtype` on the binary: `cpu-generic` (the GPU's code path on the CPU)
//! generates the same greedy ids and scores the same log-probs as `cpu`; bench rows name the
//! device; CUDA asked of a build without it (or without a GPU) and unknown names are clear
//! errors with a non-zero status.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    testdata::model_dir(name)
}

fn rzero(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rzero"))
        .args(args)
        .output()
        .expect("run rzero")
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "rzero failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn cpu_generic_generates_and_scores_as_cpu() {
    let m = fixture("qwen3-tiny");
    let m = m.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("p.jsonl");
    std::fs::write(
        &prompts,
        "{\"prompt\": \"The capital of France is\"}\n{\"prompt\": \"1 + 1 =\"}\n",
    )
    .unwrap();
    let gen = |dev: &str| -> Vec<Value> {
        json_lines(&rzero(&[
            "-q",
            "--device",
            dev,
            "generate",
            "--model",
            m,
            "--input",
            prompts.to_str().unwrap(),
            "--max-new-tokens",
            "12",
            "--ignore-eos",
        ]))
    };
    let (a, b) = (gen("cpu"), gen("cpu-generic"));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["completion_ids"].as_array().unwrap().len(), 12);
        assert_eq!(x["completion_ids"], y["completion_ids"]);
    }
    let input = tmp.path().join("s.jsonl");
    std::fs::write(
        &input,
        "{\"prompt_ids\": [1, 2, 3, 4], \"completion_ids\": [5, 6, 7]}\n",
    )
    .unwrap();
    let score = |dev: &str, dtype: &str| -> Vec<f64> {
        let rows = json_lines(&rzero(&[
            "-q",
            "--device",
            dev,
            "--dtype",
            dtype,
            "score",
            "--model",
            m,
            "--input",
            input.to_str().unwrap(),
        ]));
        rows[0]["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (c, g, h) = (
        score("cpu", "f32"),
        score("cpu-generic", "f32"),
        score("cpu-generic", "bf16"),
    );
    assert_eq!(c.len(), 3);
    for ((x, y), z) in c.iter().zip(&g).zip(&h) {
        assert!((x - y).abs() < 1e-5, "cpu {x} vs cpu-generic {y}");
        // bf16 weights: close, but not the f32 numbers.
        assert!((x - z).abs() < 0.15, "cpu {x} vs bf16 {z}");
    }
    assert!(c.iter().zip(&h).any(|(x, z)| x != z), "bf16 had no effect");
}

#[test]
fn bench_rows_name_the_device() {
    let m = fixture("llama-tiny");
    let rows = json_lines(&rzero(&[
        "-q",
        "--device",
        "cpu-generic",
        "bench",
        "train",
        "--model",
        m.to_str().unwrap(),
        "--batch",
        "2",
        "--seq",
        "16",
        "--steps",
        "0",
        "--kl-coef",
        "0",
        "--json",
    ]));
    assert_eq!(rows[0]["device"], "cpu-generic");
    assert_eq!(rows[0]["dtype"], "f32");
    assert!(rows[0]["first_step_grad_norm"].as_f64().unwrap() > 0.0);
    let cfg = tempfile::tempdir().unwrap();
    let c = cfg.path().join("config.json");
    std::fs::copy(m.join("config.json"), &c).unwrap();
    let rows = json_lines(&rzero(&[
        "-q",
        "--device",
        "cpu-generic",
        "--dtype",
        "bf16",
        "bench",
        "generate",
        "--random-init",
        c.to_str().unwrap(),
        "--batch",
        "2",
        "--new-tokens",
        "4",
        "--json",
    ]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["device"], "cpu-generic");
    assert_eq!(rows[0]["dtype"], "bf16");
    assert_eq!(rows[0]["batch"], 2);
}

#[test]
fn unavailable_or_unknown_devices_are_clear_errors() {
    let m = fixture("llama-tiny");
    let m = m.to_str().unwrap();
    let out = rzero(&["--device", "tpu", "score", "--model", m, "--input", "-"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown device \"tpu\""), "{err}");
    let out = rzero(&["--dtype", "int3", "score", "--model", m, "--input", "-"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dtype \"int3\""));
    let out = rzero(&["--device", "cuda:0", "score", "--model", m, "--input", "-"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if model::device::cuda_compiled() {
        // This machine has no GPU: the driver cannot open the device.
        assert!(err.contains("cannot be opened"), "{err}");
    } else {
        assert!(err.contains("built without CUDA"), "{err}");
    }
}

/// With RUST_BACKTRACE=1 (a developer's or CI's environment) a model that cannot be opened is
/// still a one-line error: candle attaches a captured backtrace to its errors and prints it
/// inside their message (here: candle's GGUF reader on a file that is not GGUF).
#[test]
fn model_errors_stay_one_line_with_rust_backtrace_set() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("broken.gguf");
    std::fs::write(&fake, vec![7u8; 4096]).unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"prompt_ids\": [1, 2], \"completion_ids\": [3]}\n",
    )
    .unwrap();
    for dev in ["cpu", "cpu-generic"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rzero"))
            .args(["--device", dev, "score", "--model"])
            .arg(&fake)
            .arg("--input")
            .arg(&input)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LIB_BACKTRACE")
            .env("RZERO_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a valid GGUF file") && err.contains("broken.gguf"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("candle_core::"), "{err}");
    }
}
