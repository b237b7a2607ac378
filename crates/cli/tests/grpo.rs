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
        "--max-new-tokens",
        "4",
        "--lr",
        "1e-2",
    ];
    if !extra.contains(&"--rollout-batch-size") {
        args.extend_from_slice(&["--batch-size", "2"]);
    }
    args.extend_from_slice(extra);
    rzero().args(&args).output().expect("runs rzero")
}

/// Step rows of OUT/metrics.jsonl (update rows, which carry "update", left out).
fn metrics_lines(out: &Path) -> usize {
    rows(out)
        .iter()
        .filter(|r| r.get("update").is_none())
        .count()
}

fn rows(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Rows without their timings and memory readings (the only fields a resumed run may
/// change).
fn rows_untimed(out: &Path) -> Vec<Value> {
    rows(out)
        .into_iter()
        .map(testdata::without_machine_fields)
        .collect()
}

/// A kill -9 between two updates of one rollout, then a rerun: the rollout is read back from
/// its journal (not sampled again) and the run ends byte-identical to an uninterrupted one.
#[test]
fn kill_between_updates_of_a_rollout_resumes_byte_identical() {
    let model = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "{{\"question\": \"{i}+{i}?\", \"answer\": \"{}\"}}\n",
            2 * i
        ));
    }
    std::fs::write(&data, text).unwrap();
    let extra = [
        "--rollout-batch-size",
        "4",
        "--global-batch-size",
        "1",
        "--kl-coef",
        "0.01",
        "--seed",
        "3",
    ];
    let full = tmp.path().join("full");
    let o = grpo(&model, &data, &full, 3, &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = rows(&full);
    assert_eq!(r.len(), 3 * 5, "3 steps × (4 update rows + 1 step row)");
    // The first update of each rollout has ratio 1; later ones may not.
    for row in r.iter().filter(|r| r["update"] == 1) {
        assert_eq!(row["ppo_kl"], 0.0, "{row}");
    }

    let mut landed = false;
    for attempt in 0..10 {
        let out = tmp.path().join(format!("killed{attempt}"));
        let mut args: Vec<String> = [
            "grpo",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "3",
            "--group-size",
            "2",
            "--max-new-tokens",
            "4",
            "--lr",
            "1e-2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = rzero()
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill as soon as step 2 has an update row but no step row: mid-rollout.
        let t0 = std::time::Instant::now();
        let mut mid = false;
        while t0.elapsed() < std::time::Duration::from_secs(120) {
            let r = rows(&out);
            let ups = r
                .iter()
                .filter(|x| x["step"] == 2 && x.get("update").is_some())
                .count();
            let done = r
                .iter()
                .any(|x| x["step"] == 2 && x.get("update").is_none());
            if done || child.try_wait().unwrap().is_some() {
                break;
            }
            if (1..4).contains(&ups) {
                child.kill().unwrap();
                mid = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.kill();
        child.wait().unwrap();
        let r = rows(&out);
        let partial = r
            .iter()
            .any(|x| x["step"] == 2 && x.get("update").is_some())
            && !r
                .iter()
                .any(|x| x["step"] == 2 && x.get("update").is_none());
        if !(mid && partial) {
            continue;
        }
        assert!(
            out.join("rollout.json").is_file(),
            "the rollout of step 2 is journaled"
        );
        let o = grpo(&model, &data, &out, 3, &extra);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        assert!(
            stderr.contains("rollout resumed from the journal"),
            "{stderr}"
        );
        for f in [
            "checkpoint/model/model.safetensors",
            "checkpoint/optimizer.safetensors",
            "checkpoint/trainer_state.json",
        ] {
            assert!(
                std::fs::read(full.join(f)).unwrap() == std::fs::read(out.join(f)).unwrap(),
                "{f} differs after a kill between updates"
            );
        }
        assert_eq!(rows_untimed(&full), rows_untimed(&out));
        landed = true;
        break;
    }
    assert!(
        landed,
        "no kill landed between two updates of a rollout in 10 attempts"
    );
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
    // Every update's progress line and every metric row (updates and steps) report the
    // process's resident set: above 1 MiB, at most its peak.
    assert!(stderr.contains(" GiB (peak "), "{stderr}");
    let r = rows(&out);
    assert!(r.len() >= 4, "{r:?}");
    for row in r {
        let rss = row["mem_rss_bytes"].as_u64().expect("mem_rss_bytes");
        let peak = row["mem_rss_peak_bytes"]
            .as_u64()
            .expect("mem_rss_peak_bytes");
        assert!(rss > 1 << 20 && rss <= peak, "{row}");
    }
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
    assert_eq!(
        (state["format"].clone(), state["step"].clone()),
        (2.into(), 2.into())
    );
    let optim = &state["config"]["optim"];
    assert_eq!(
        (optim["recompute"].clone(), optim["lora_rank"].clone()),
        (true.into(), 2.into())
    );
    assert_eq!(state["config"]["merge_lora_on_save"], true);
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The output folder of main's (eae0885) `rzero grpo`, whose `trainer_state.json` is format
/// 1 (the config before it held the knobs), resumes: the run ends as an uninterrupted run of
/// this build does, and the new checkpoint is format 2.
#[test]
fn a_run_of_eae0885_resumes_as_an_uninterrupted_one() {
    let model = fixture();
    let fx = testdata::path("checkpoint-eae0885");
    let data = fx.join("data.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--lora-rank",
        "2",
        "--lora-targets",
        "q_proj,v_proj",
        "--seed",
        "3",
    ];
    let resumed = tmp.path().join("resumed");
    copy_dir(&fx.join("grpo-lora"), &resumed);
    let o = grpo(&model, &data, &resumed, 2, &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fresh = tmp.path().join("fresh");
    let o = grpo(&model, &data, &fresh, 2, &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(metrics_lines(&resumed), 2);
    assert_eq!(rows_untimed(&resumed), rows_untimed(&fresh));
    let state = testdata::read_json(&resumed.join("checkpoint/trainer_state.json"));
    assert_eq!(
        (state["format"].clone(), state["step"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(
        state,
        testdata::read_json(&fresh.join("checkpoint/trainer_state.json"))
    );
}
