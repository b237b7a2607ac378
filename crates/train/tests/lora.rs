//! LoRA and activation recomputation: recomputed gradients equal the plain ones (full
//! fine-tuning and LoRA, a tiny random Qwen2 with biases and an untied head, and the
//! qwen3-tiny fixture), LoRA gradients are the chain rule of the full gradient, and a LoRA
//! checkpoint saves a PEFT adapter that loads merged with the policy's logits and resumes
//! bit for bit.

use candle_core::{DType, Device, Tensor};
use model::{Config, Weights};
use train::config::LoraConfig;
use train::{Group, GrpoConfig, LossAgg, ModelFiles, OptimKnobs, Trainer};

mod common;
use common::*;

fn groups(shift: u32) -> Vec<Group> {
    groups_from(shift, 10)
}

fn lora(rank: usize, targets: &[&str]) -> Option<LoraConfig> {
    Some(LoraConfig {
        rank,
        alpha: Some(3.0 * rank as f64),
        target_modules: targets.iter().map(|s| s.to_string()).collect(),
        merge_on_save: false,
    })
}

/// A reference 5% off the policy, so the KL term has a gradient too.
fn shifted(w: &Weights) -> Weights {
    w.iter()
        .map(|(k, v)| (k.clone(), (v * 1.05).unwrap()))
        .collect()
}

/// One step (so LoRA's B is non-zero), then the gradient of another batch with and
/// without recomputation on the same trainer.
fn check_recompute(what: &str, cfg: &Config, w: &Weights, lora: Option<LoraConfig>) {
    let c = GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-2,
            micro_batch_size: 3,
            kl_coef: 0.1,
            ..Default::default()
        },
        logprob_chunk_rows: 5,
        temperature: 0.7,
        ..Default::default()
    };
    let c = with_lora(c, lora);
    let refw = shifted(w);
    let mut t = Trainer::new(c, cfg, w, Some(&refw), &Device::Cpu).unwrap();
    t.step(&groups(0)).unwrap();
    let plain = t.compute_gradients(&groups(1)).unwrap();
    let g_plain = all_grads(&t);
    t.set_recompute(true);
    let rec = t.compute_gradients(&groups(1)).unwrap();
    let g_rec = all_grads(&t);
    let d = max_rel_diff(&g_rec, &g_plain);
    eprintln!("{what}: max relative gradient difference {d:.2e}");
    assert!(
        g_plain.iter().filter(|&&g| g != 0.0).count() > g_plain.len() / 2,
        "{what}: the gradient is mostly zero"
    );
    assert!(d <= 1e-5, "{what}: recompute changes the gradient by {d:e}");
    assert!((rec.loss - plain.loss).abs() <= 1e-6 * plain.loss.abs().max(1.0));
    assert_eq!(rec.kl, plain.kl);
    // Per parameter too: no tensor's gradient may be lost (e.g. a tied embedding's).
    for s in t.layout().specs() {
        let a = t.grad(&s.name).unwrap();
        let n: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        assert!(n > 0.0, "{what}: {} has no gradient with recompute", s.name);
    }
    // The recomputed gradient steps like the plain one.
    t.apply_update().unwrap();
}

const ALL: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[test]
fn recompute_gives_the_same_gradients() {
    let (cfg, w) = random_qwen2(12345);
    check_recompute("random qwen2, full", &cfg, &w, None);
    check_recompute("random qwen2, lora", &cfg, &w, lora(4, &ALL));
    let (_, m) = fixture_model("qwen3-tiny");
    check_recompute("qwen3-tiny, full", &m.config, &m.weights, None);
    check_recompute(
        "qwen3-tiny, lora q,v,down",
        &m.config,
        &m.weights,
        lora(2, &["q_proj", "v_proj", "down_proj"]),
    );
}

/// `dA = s·Bᵀ·dW` and `dB = s·dW·Aᵀ`, with `dW` the full fine-tuning gradient at the merged
/// weights (same reference policy, same batch).
#[test]
fn lora_gradients_are_the_chain_rule_of_the_full_gradient() {
    let (cfg, w) = random_qwen2(12345);
    let c = GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-2,
            micro_batch_size: 2,
            kl_coef: 0.05,
            ..Default::default()
        },
        ..Default::default()
    };
    let c = with_lora(c, lora(3, &["q_proj", "o_proj", "up_proj"]));
    let mut lt = Trainer::new(c.clone(), &cfg, &w, None, &Device::Cpu).unwrap();
    // Fresh: the policy is the base model (B = 0), and A's gradient is zero.
    let ids = Tensor::new(&[[1u32, 5, 9, 14, 3]], &Device::Cpu).unwrap();
    let base = model::Model::from_weights(&cfg, &w, DType::F32, &Device::Cpu).unwrap();
    let l0 = base.forward(&ids, None).unwrap().flatten_all().unwrap();
    let lp = lt
        .policy()
        .forward(&ids, None)
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(l0.to_vec1::<f32>().unwrap(), lp.to_vec1::<f32>().unwrap());
    lt.step(&groups(0)).unwrap();
    lt.compute_gradients(&groups(1)).unwrap();
    // Only the adapters are parameters; the base stays as it was.
    assert_eq!(lt.layout().specs().len(), 2 * 3 * cfg.num_hidden_layers);
    let merged = lt.weights();
    for (k, v) in &w {
        let same = merged[k].to_vec1_any() == v.to_vec1_any();
        let adapted = ["q_proj", "o_proj", "up_proj"]
            .iter()
            .any(|m| k.ends_with(&format!("{m}.weight")));
        assert_eq!(same, !adapted, "{k}: adapted {adapted}, unchanged {same}");
    }
    let snapshot: Weights = merged
        .iter()
        .map(|(k, v)| (k.clone(), v.copy().unwrap()))
        .collect();
    let mut ft = Trainer::new(with_lora(c, None), &cfg, &snapshot, Some(&w), &Device::Cpu).unwrap();
    ft.compute_gradients(&groups(1)).unwrap();
    let scale = lt.lora().unwrap().scale() as f32;
    assert_eq!(scale, 3.0);
    let dev = Device::Cpu;
    let t = |name: &str, grad: &[f32], shape: &[usize]| {
        Tensor::from_slice(grad, shape, &dev).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let adapter = lt.adapter(None).unwrap().unwrap();
    for (path, pair) in &adapter.modules {
        let wname = format!("{path}.weight");
        let ws = ft.layout().get(&wname).unwrap().shape.clone();
        let dw = t(&wname, ft.grad(&wname).unwrap(), &ws);
        let da_want = (pair.b.t().unwrap().matmul(&dw).unwrap() * scale as f64).unwrap();
        let db_want = (dw.matmul(&pair.a.t().unwrap()).unwrap() * scale as f64).unwrap();
        for (which, want) in [("A", da_want), ("B", db_want)] {
            let name = format!("{path}.lora_{which}.weight");
            let got = lt.grad(&name).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let d = max_rel_diff(got, &want);
            assert!(d < 1e-4, "{name}: chain rule off by {d:e}");
            assert!(want.iter().any(|&x| x != 0.0), "{name}: zero gradient");
        }
    }
}

trait AnyVec {
    fn to_vec1_any(&self) -> Vec<f32>;
}
impl AnyVec for Tensor {
    fn to_vec1_any(&self) -> Vec<f32> {
        self.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

fn logits(m: &model::Model) -> Vec<f32> {
    let ids = Tensor::new(&[[1u32, 40, 41, 42, 50, 51, 52]], &Device::Cpu).unwrap();
    m.forward(&ids, None).unwrap().to_vec1_any()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn lora_checkpoint_is_a_peft_adapter_that_loads_merged_and_resumes_bit_identically() {
    let (dir, m) = fixture_model("qwen3-tiny");
    let dev = Device::Cpu;
    let mut lc = lora(4, &["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]).unwrap();
    lc.merge_on_save = true;
    let c = GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-2,
            micro_batch_size: 2,
            ..Default::default()
        },
        loss_agg: LossAgg::TokenMean,
        ..Default::default()
    };
    let c = with_lora(c, Some(lc));
    let mut a = Trainer::new(c.clone(), &m.config, &m.weights, None, &dev).unwrap();
    a.step(&groups(0)).unwrap();
    a.step(&groups(1)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let base = dir.to_str().unwrap();
    let files = ModelFiles {
        tokenizer: &m.tokenizer,
        chat_template: m.chat_template.as_ref(),
        generation: &m.generation,
        base_model: Some(base),
    };
    a.save_checkpoint(&ck, &files).unwrap();

    // 1. The PEFT layout.
    let acfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ck.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(acfg["peft_type"], "LORA");
    assert_eq!(acfg["task_type"], "CAUSAL_LM");
    assert_eq!(
        (acfg["r"].as_u64(), acfg["lora_alpha"].as_u64()),
        (Some(4), Some(12))
    );
    assert_eq!(acfg["lora_dropout"], 0.0);
    assert_eq!(acfg["bias"], "none");
    assert_eq!(acfg["inference_mode"], true);
    assert_eq!(acfg["fan_in_fan_out"], false);
    assert_eq!(acfg["base_model_name_or_path"], base);
    assert_eq!(
        acfg["target_modules"],
        serde_json::json!(["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"])
    );
    let st =
        candle_core::safetensors::load(ck.join("adapter/adapter_model.safetensors"), &dev).unwrap();
    let (h, i) = (m.config.hidden_size, m.config.intermediate_size);
    let q = m.config.num_attention_heads * m.config.head_dim;
    let kv = m.config.num_key_value_heads * m.config.head_dim;
    assert_eq!(st.len(), 2 * 5 * m.config.num_hidden_layers);
    for (key, shape) in [
        (
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            [4, h],
        ),
        (
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
            [q, 4],
        ),
        (
            "base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight",
            [kv, 4],
        ),
        (
            "base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight",
            [4, q],
        ),
        (
            "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
            [4, i],
        ),
        (
            "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight",
            [h, 4],
        ),
    ] {
        let t = st.get(key).unwrap_or_else(|| panic!("missing {key}"));
        assert_eq!(t.dims(), shape, "{key}");
        assert_eq!(t.dtype(), DType::F32, "{key}");
    }
    let ab = st["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].to_vec1_any();
    assert!(ab.iter().any(|&x| x != 0.0), "B was not trained");

    // 2. Base + adapter (found through base_model_name_or_path) = the trainer's policy; so is
    //    the merged folder.
    let policy = logits(a.policy());
    let opts = model::LoadOptions::default();
    let la = model::load(ck.join("adapter").to_str().unwrap(), &opts).unwrap();
    let d = max_abs_diff(&logits(&la.model().unwrap()), &policy);
    assert!(d <= 1e-5, "base + adapter logits differ by {d}");
    let lb = model::load_with_adapter(base, &ck.join("adapter"), &opts).unwrap();
    assert_eq!(logits(&lb.model().unwrap()), logits(&la.model().unwrap()));
    let lm = model::load(ck.join("model").to_str().unwrap(), &opts).unwrap();
    let d = max_abs_diff(&logits(&lm.model().unwrap()), &policy);
    assert!(d <= 1e-5, "merged folder logits differ by {d}");
    let l0 = logits(&m.model().unwrap());
    assert!(
        max_abs_diff(&l0, &policy) > 1e-4,
        "training changed nothing"
    );

    // 3. Resume: bit-identical parameters, optimizer, RNG and next step.
    let mut b = Trainer::new(c.clone(), &m.config, &m.weights, None, &dev).unwrap();
    let state = b.restore_checkpoint(&ck).unwrap();
    assert_eq!((state.step, b.step_count()), (2, 2));
    assert_eq!(a.master(), b.master());
    assert_eq!(a.optimizer(), b.optimizer());
    assert_eq!(a.rng_ref(), b.rng_ref());
    assert_eq!(logits(b.policy()), policy);
    let ma = a.step(&groups(2)).unwrap();
    let mb = b.step(&groups(2)).unwrap();
    assert_eq!(ma.grad.loss, mb.grad.loss);
    assert_eq!(ma.update.grad_norm, mb.update.grad_norm);
    assert!(a.master() == b.master(), "resumed parameters differ");
    assert_eq!(logits(a.policy()), logits(b.policy()));

    // 4. A full fine-tuning trainer refuses the LoRA checkpoint, naming why.
    let mut f = Trainer::new(
        with_lora(c.clone(), None),
        &m.config,
        &m.weights,
        None,
        &dev,
    )
    .unwrap();
    let e = f.restore_checkpoint(&ck).unwrap_err().to_string();
    assert!(
        e.contains("LoRA rank 4") && e.contains("full fine-tuning"),
        "{e}"
    );

    // 5. Without merge_on_save the checkpoint holds the adapter only.
    let mut c2 = c;
    c2.merge_lora_on_save = false;
    let t2 = Trainer::new(c2, &m.config, &m.weights, None, &dev).unwrap();
    let ck2 = tmp.path().join("ck2");
    t2.save_checkpoint(&ck2, &files).unwrap();
    assert!(ck2.join("adapter/adapter_model.safetensors").is_file());
    assert!(!ck2.join("model").exists());
    assert!(ck2.join("optimizer.safetensors").is_file());
}
