//! `rzero score --model BAD ...`: bad model paths and files end the process with a non-zero
//! status and a one-line error naming the file at fault, never a panic. A good model scores
//! the fixture's completion (positive control: the error cases fail because of the model).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    testdata::model_dir(name)
}

/// A copy of the llama-tiny fixture folder, plus a valid score input file.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let src = fixture("llama-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"prompt_ids\": [1, 2, 3], \"completion_ids\": [4, 5]}\n",
    )
    .unwrap();
    (tmp, dir, input)
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn score(model: &str, input: &Path, env: &[(&str, &Path)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rzero"));
    cmd.args(["score", "--model", model, "--input"])
        .arg(input)
        .env("RZERO_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run rzero");
    Outcome {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Fails cleanly, without a panic, and stderr names every `needle`.
fn assert_clean_failure(o: &Outcome, needles: &[&str]) {
    assert!(!o.ok, "should fail; stdout: {}", o.stdout);
    assert!(!o.stderr.contains("panicked"), "panic: {}", o.stderr);
    assert!(!o.stderr.contains("RUST_BACKTRACE"), "{}", o.stderr);
    for n in needles {
        assert!(
            o.stderr.contains(n),
            "stderr should name {n:?}: {}",
            o.stderr
        );
    }
}

#[test]
fn score_reports_bad_models_cleanly() {
    let (tmp, dir, input) = setup();
    let ds = dir.to_str().unwrap();
    let cfg = dir.join("config.json");
    let st = dir.join("model.safetensors");
    let good_cfg = std::fs::read(&cfg).unwrap();
    let good_st = std::fs::read(&st).unwrap();

    // Positive control: the intact folder scores, matching the fixture's log-probs.
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llama-tiny").join("expected.json")).unwrap(),
    )
    .unwrap();
    let lp = &exp["logprobs"];
    let good_in = tmp.path().join("good.jsonl");
    std::fs::write(
        &good_in,
        format!(
            "{}\n",
            serde_json::json!({"prompt_ids": lp["prompt_ids"], "completion_ids": lp["continuation_ids"]})
        ),
    )
    .unwrap();
    let o = score(ds, &good_in, &[]);
    assert!(o.ok, "{}", o.stderr);
    let row: Value = serde_json::from_str(o.stdout.lines().next().unwrap()).unwrap();
    let got = row["logprobs"].as_array().unwrap();
    let want = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4,
            "{g} vs {w}"
        );
    }

    // A path that does not exist.
    let missing = tmp.path().join("no-such-model");
    assert_clean_failure(
        &score(missing.to_str().unwrap(), &input, &[]),
        &[missing.to_str().unwrap()],
    );

    // config.json: missing, corrupt, unknown architecture.
    std::fs::remove_file(&cfg).unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[cfg.to_str().unwrap()]);
    std::fs::write(&cfg, "{\"architectures\": [").unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[cfg.to_str().unwrap(), "JSON"]);
    let mut v: Value = serde_json::from_slice(&good_cfg).unwrap();
    v["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    v["model_type"] = serde_json::json!("mamba");
    std::fs::write(&cfg, v.to_string()).unwrap();
    assert_clean_failure(
        &score(ds, &input, &[]),
        &[cfg.to_str().unwrap(), "MambaForCausalLM"],
    );
    std::fs::write(&cfg, &good_cfg).unwrap();

    // model.safetensors: corrupt, truncated, a tensor of the wrong shape.
    std::fs::write(&st, b"garbage, not safetensors").unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[st.to_str().unwrap()]);
    std::fs::write(&st, &good_st[..good_st.len() - 1000]).unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[st.to_str().unwrap()]);
    let mut w = candle_core::safetensors::load_buffer(&good_st, &candle_core::Device::Cpu).unwrap();
    let name = "model.layers.0.mlp.down_proj.weight";
    w.insert(
        name.to_string(),
        candle_core::Tensor::zeros((64, 64), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    );
    candle_core::safetensors::save(&w, &st).unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[st.to_str().unwrap(), name]);
    std::fs::write(&st, &good_st).unwrap();

    // tokenizer.json missing.
    let tok = dir.join("tokenizer.json");
    std::fs::remove_file(&tok).unwrap();
    assert_clean_failure(&score(ds, &input, &[]), &[tok.to_str().unwrap()]);

    // A .gguf that is not GGUF.
    let fake = tmp.path().join("broken.gguf");
    std::fs::write(&fake, vec![7u8; 4096]).unwrap();
    assert_clean_failure(
        &score(fake.to_str().unwrap(), &input, &[]),
        &[fake.to_str().unwrap()],
    );

    // A hub id that is not in the (empty) cache: one line naming the id and the cache folder.
    let cache = tmp.path().join("hf-cache");
    std::fs::create_dir(&cache).unwrap();
    let o = score(
        "Qwen/Qwen3-4B-Base",
        &input,
        &[("HF_HUB_CACHE", &cache), ("HF_HUB_OFFLINE", Path::new("1"))],
    );
    assert_clean_failure(&o, &["Qwen/Qwen3-4B-Base", cache.to_str().unwrap()]);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
}
