//! Round trips with the real Python peers (the venv of `scripts/py-venv.sh`: pinned torch,
//! transformers, peft; `tests/peers/peer.py` is the Python side), on every tiny model fixture:
//!
//! 1. an rzero checkpoint (the Hugging Face folder rzero writes) loads in
//!    `transformers.AutoModelForCausalLM` with the same per-token log-probs as `rzero score`;
//! 2. an rzero LoRA adapter (PEFT layout, as `rzero grpo --lora-rank` checkpoints it) loads with
//!    `peft.PeftModel.from_pretrained` on the base with the same log-probs as `rzero score` on
//!    the adapter folder, and PEFT's `merge_and_unload` equals rzero's merged folder;
//! 3. a transformers-saved model (bf16, sharded safetensors with an index) loads in rzero with the
//!    same log-probs as transformers computes from it.
//!
//! Missing Python or a missing peer package is a failure (see `testdata::python`), never a skip.
//! Tolerances are `peer_*` in `tests/fixtures/models/tolerances.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use model::lora::{module_path, module_shape, Adapter, AdapterConfig, LoraPair, ALL_TARGETS};
use serde_json::Value;

fn peer_script() -> PathBuf {
    testdata::repo_root().join("tests/peers/peer.py")
}

/// Runs `tests/peers/peer.py ARGS` with the peer venv's python; its JSON output.
fn peer(args: &[&str]) -> Value {
    let script = peer_script();
    assert!(script.is_file(), "{} not found", script.display());
    let py = testdata::python();
    let out = Command::new(&py)
        .arg(&script)
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("CUDA_VISIBLE_DEVICES", "")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "{} {} {args:?} failed:\n{}",
        py.display(),
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "peer.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `rzero score --model MODEL --input ITEMS`: the log-probs of each line.
fn rzero_score(model: &Path, items: &Path) -> Vec<Vec<f64>> {
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .env("RZERO_LOG", "warn")
        .args(["score", "--model", model.to_str().unwrap()])
        .args(["--input", items.to_str().unwrap(), "--batch-size", "2"])
        .output()
        .expect("runs rzero");
    assert!(
        o.status.success(),
        "rzero score --model {} failed: {}",
        model.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            floats(&v["logprobs"])
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn tol(key: &str) -> f64 {
    testdata::tolerance("models/tolerances.json", key).0
}

/// Score items from the fixture's own sequences: the log-prob case, and the longest forward
/// case split in half (written to `dir/items.jsonl`).
fn items(fixture: &Path, dir: &Path) -> PathBuf {
    let e = testdata::read_json(&fixture.join("expected.json"));
    let lp = &e["logprobs"];
    let long = ids(&e["forward"].as_array().unwrap().last().unwrap()["input_ids"]);
    let half = long.len() / 2;
    let rows = [
        (ids(&lp["prompt_ids"]), ids(&lp["continuation_ids"])),
        (long[..half].to_vec(), long[half..].to_vec()),
    ];
    let text: String = rows
        .iter()
        .map(|(p, c)| serde_json::json!({"prompt_ids": p, "completion_ids": c}).to_string() + "\n")
        .collect();
    let p = dir.join("items.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "number of items");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "tokens per item");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

fn load(dir: &Path) -> model::LoadedModel {
    model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).expect("load")
}

fn save(dir: &Path, m: &model::LoadedModel) {
    model::save_hf_folder(
        dir,
        &m.config,
        &m.weights,
        &m.tokenizer,
        m.chat_template.as_ref(),
        &m.generation,
    )
    .expect("save");
}

#[test]
fn rzero_checkpoint_loads_in_transformers_with_the_same_logprobs() {
    for name in testdata::MODELS {
        let fx = testdata::model_dir(name);
        let tmp = tempfile::tempdir().unwrap();
        let items = items(&fx, tmp.path());
        // The checkpoint: the fixture loaded and written back by rzero (its config.json, its
        // safetensors writer; lm_head absent when tied).
        let ckpt = tmp.path().join("ckpt");
        save(&ckpt, &load(&fx));
        let ours = rzero_score(&ckpt, &items);
        let theirs = peer(&["logprobs", ckpt.to_str().unwrap(), items.to_str().unwrap()]);
        let theirs: Vec<Vec<f64>> = theirs["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let d = max_diff(&ours, &theirs);
        eprintln!("{name}: rzero checkpoint, rzero score vs transformers: max |diff| {d:.2e}");
        assert!(d <= tol("peer_logprobs"), "{name}: max |diff| {d}");
    }
}

/// A checkpoint saved in bf16 (what a bf16-compute trainer writes: every tensor bf16,
/// `torch_dtype: bfloat16`) loads in transformers with the log-probs rzero gets from it.
#[test]
fn rzero_bf16_checkpoint_loads_in_transformers_with_the_same_logprobs() {
    let fx = testdata::model_dir("qwen3-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let items = items(&fx, tmp.path());
    let mut m = load(&fx);
    for t in m.weights.values_mut() {
        *t = t.to_dtype(candle_core::DType::BF16).unwrap();
    }
    let ckpt = tmp.path().join("ckpt");
    save(&ckpt, &m);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    for (name, t) in safetensors_any(&ckpt.join("model.safetensors")) {
        assert_eq!(t.dtype(), candle_core::DType::BF16, "{name}");
    }
    let ours = rzero_score(&ckpt, &items);
    let theirs = peer(&["logprobs", ckpt.to_str().unwrap(), items.to_str().unwrap()]);
    let theirs: Vec<Vec<f64>> = theirs["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    let d = max_diff(&ours, &theirs);
    eprintln!("qwen3-tiny bf16 checkpoint, rzero score vs transformers: max |diff| {d:.2e}");
    assert!(d <= tol("peer_logprobs"), "max |diff| {d}");
}

fn safetensors_any(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
}

/// Deterministic values in [-scale, scale).
fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A rank-4 adapter on every target module of every layer with random A and B (B non-zero, so
/// the adapter changes the model), for the base folder `base`.
fn random_adapter(base: &Path, cfg: &model::Config) -> Adapter {
    let (r, dev) = (4usize, Device::Cpu);
    let mut modules = BTreeMap::new();
    let mut seed = 1;
    for layer in 0..cfg.num_hidden_layers {
        for module in ALL_TARGETS {
            let (out, inp) = module_shape(cfg, module).unwrap();
            seed += 1;
            let a = Tensor::from_vec(noise(r * inp, seed, 0.3), (r, inp), &dev).unwrap();
            seed += 1;
            let b = Tensor::from_vec(noise(out * r, seed, 0.3), (out, r), &dev).unwrap();
            modules.insert(module_path(layer, module).unwrap(), LoraPair { a, b });
        }
    }
    Adapter {
        config: AdapterConfig {
            r,
            lora_alpha: 8.0,
            target_modules: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
            base_model_name_or_path: Some(base.to_str().unwrap().to_string()),
        },
        modules,
    }
}

fn safetensors_f32(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
        .collect()
}

#[test]
fn rzero_lora_adapter_loads_in_peft_and_merges_to_rzeros_merged_folder() {
    for name in testdata::MODELS {
        let fx = testdata::model_dir(name);
        let base = std::fs::canonicalize(&fx).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let items = items(&fx, tmp.path());
        let base_model = load(&base);
        let adapter_dir = tmp.path().join("adapter");
        random_adapter(&base, &base_model.config)
            .save(&adapter_dir)
            .expect("save adapter");
        // rzero: the adapter folder is a model (base + adapter merged); its merged folder.
        let ours = rzero_score(&adapter_dir, &items);
        let merged_dir = tmp.path().join("merged");
        save(&merged_dir, &load(&adapter_dir));
        // PEFT: PeftModel.from_pretrained(base, adapter), then merge_and_unload saved.
        let peft_merged = tmp.path().join("peft-merged");
        let theirs = peer(&[
            "logprobs",
            base.to_str().unwrap(),
            items.to_str().unwrap(),
            "--adapter",
            adapter_dir.to_str().unwrap(),
            "--merged-out",
            peft_merged.to_str().unwrap(),
        ]);
        let lp = |k: &str| -> Vec<Vec<f64>> {
            theirs[k].as_array().unwrap().iter().map(floats).collect()
        };
        let d = max_diff(&ours, &lp("logprobs"));
        let dm = max_diff(&ours, &lp("merged_logprobs"));
        let moved = max_diff(&ours, &rzero_score(&base, &items));
        eprintln!(
            "{name}: adapter log-probs vs PEFT {d:.2e}, vs PEFT merged {dm:.2e}; adapter moved them by {moved:.2e}"
        );
        assert!(moved > 1e-2, "{name}: the adapter should change the model");
        assert!(d <= tol("peer_logprobs"), "{name}: vs PEFT: {d}");
        assert!(dm <= tol("peer_logprobs"), "{name}: vs PEFT merged: {dm}");

        // merge_and_unload's weights equal rzero's merged folder, tensor by tensor.
        let ours_w = safetensors_f32(&merged_dir.join("model.safetensors"));
        let theirs_w = safetensors_f32(&peft_merged.join("model.safetensors"));
        let mut a: Vec<_> = ours_w.keys().collect();
        let mut b: Vec<_> = theirs_w.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: tensor names of the merged folders");
        let mut worst = (String::new(), 0f32);
        for (k, t) in &ours_w {
            let u = &theirs_w[k];
            assert_eq!(t.dims(), u.dims(), "{name}: {k}");
            let e = (t - u)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            if e > worst.1 {
                worst = (k.clone(), e);
            }
        }
        eprintln!(
            "{name}: merged weights, worst |diff| {:.2e} ({})",
            worst.1, worst.0
        );
        let (atol, _) = testdata::tolerance("models/tolerances.json", "peer_merged_weights");
        assert!(
            f64::from(worst.1) <= atol,
            "{name}: merged weight {} differs by {}",
            worst.0,
            worst.1
        );
    }
}

#[test]
fn transformers_bf16_sharded_model_loads_in_rzero_with_the_same_logprobs() {
    for name in testdata::MODELS {
        let fx = testdata::model_dir(name);
        let tmp = tempfile::tempdir().unwrap();
        let items = items(&fx, tmp.path());
        let out = tmp.path().join("bf16");
        let saved = peer(&[
            "save-bf16",
            fx.to_str().unwrap(),
            out.to_str().unwrap(),
            "100KB",
        ]);
        let shards = saved["shards"].as_array().unwrap();
        assert!(shards.len() > 1, "{name}: not sharded: {saved}");
        assert!(out.join("model.safetensors.index.json").is_file());
        // The weights on disk are bf16.
        let st =
            candle_core::safetensors::load(out.join(shards[0].as_str().unwrap()), &Device::Cpu)
                .unwrap();
        assert!(st.values().all(|t| t.dtype() == DType::BF16), "{name}");

        let ours = rzero_score(&out, &items);
        let theirs = peer(&["logprobs", out.to_str().unwrap(), items.to_str().unwrap()]);
        let theirs: Vec<Vec<f64>> = theirs["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let d = max_diff(&ours, &theirs);
        eprintln!("{name}: transformers bf16 sharded, rzero score vs transformers: {d:.2e}");
        assert!(d <= tol("peer_bf16_logprobs"), "{name}: max |diff| {d}");
    }
}
