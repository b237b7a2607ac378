//! `rzero grpo` end to end on the qwen3-tiny fixture: LoRA with recomputation writes a PEFT
//! adapter (and the merged model with `--merge-on-save`), a rerun resumes it, and a full
//! fine-tuning run refuses the LoRA checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn rzero() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rzero"));
    c.env("RZERO_LOG", "warn");
    c
}

fn fixture() -> PathBuf {
    testdata::model_dir("qwen3-tiny")
}

fn grpo(model: &Path, data: &Path, out: &Path, steps: u32, extra: &[&str]) -> std::process::Output {
    let steps = steps.to_string();
    let mut args = vec![
        "grpo",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        &steps,
        "--group-size",
        "2",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "4",
        "--lr",
        "1e-2",
    ];
    args.extend_from_slice(extra);
    rzero().args(&args).output().expect("runs rzero")
}

fn metrics_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn lora_with_recompute_saves_a_peft_adapter_and_resumes() {
    let model = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"2+3?\", \"answer\": 5}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let lora = [
        "--lora-rank",
        "2",
        "--lora-alpha",
        "4",
        "--lora-targets",
        "q_proj,v_proj",
        "--merge-on-save",
        "--recompute",
    ];
    let o = grpo(&model, &data, &out, 2, &lora);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rzero grpo failed: {stderr}");
    assert!(stderr.contains("LoRA adapter (PEFT layout)"), "{stderr}");
    let ck = out.join("checkpoint");
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(ck.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["r"], 2);
    assert_eq!(cfg["lora_alpha"], 4);
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    let base = std::fs::canonicalize(&model).unwrap();
    assert_eq!(cfg["base_model_name_or_path"], base.to_str().unwrap());
    assert!(ck.join("adapter/adapter_model.safetensors").is_file());
    assert!(
        ck.join("model/model.safetensors").is_file(),
        "--merge-on-save"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 2);
    assert_eq!(state["config"]["recompute"], true);
    assert_eq!(state["config"]["lora"]["rank"], 2);
    assert_eq!(metrics_lines(&out), 2);

    // The adapter folder is a model for every command (base + adapter, merged on load).
    let o = rzero()
        .args(["generate", "--model", ck.join("adapter").to_str().unwrap()])
        .args(["--max-new-tokens", "3", "--prompt", "1+1?"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "generate with the adapter failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A rerun resumes at step 2 and runs one more.
    let o = grpo(&model, &data, &out, 3, &lora);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 steps run"));
    assert_eq!(metrics_lines(&out), 3);

    // Full fine-tuning on the same folder refuses the LoRA checkpoint.
    let o = grpo(&model, &data, &out, 4, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("LoRA rank 2"), "{stderr}");

    // LoRA options need --lora-rank; unknown targets are named.
    let o = grpo(
        &model,
        &data,
        &tmp.path().join("o2"),
        1,
        &["--lora-alpha", "3"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--lora-rank"));
    let o = grpo(
        &model,
        &data,
        &tmp.path().join("o3"),
        1,
        &["--lora-rank", "2", "--lora-targets", "q_proj,lm_head"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lm_head"));
}
