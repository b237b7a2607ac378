//! bf16 compute (`GrpoConfig::compute_dtype = bf16`) on the GRPO fixture step: the loss terms
//! and gradients are within a stated tolerance of the f32 ones (full fine-tuning, activation
//! recomputation, LoRA), the parameters, gradients and AdamW moments stay f32 while the policy
//! is bf16, the first update of a rollout sees a ratio of exactly 1, and a checkpoint holds
//! the model in bf16 (config `torch_dtype` bfloat16) with the f32 master weights beside it,
//! from which a resume is bit-identical.
//!
//! Tolerances (bf16 keeps 8 significant bits, a relative rounding of 2^-9 ≈ 0.2% per value):
//! the mean −log p of the response tokens within 1% of f32; the gradient vector's cosine with
//! the f32 one ≥ 0.999 and its largest difference ≤ 5% of the largest f32 component.

use candle_core::{DType, Device};
use train::{ComputeDtype, GrpoConfig, LossAgg, OptimKnobs, Trainer};

mod common;
use common::*;

fn cfg(compute: ComputeDtype) -> GrpoConfig {
    GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-3,
            micro_batch_size: 2,
            ..Default::default()
        },
        loss_agg: LossAgg::TokenMean,
        compute_dtype: compute,
        ..Default::default()
    }
}

#[test]
fn bf16_gradients_are_close_to_f32() {
    for name in ["qwen3-tiny", "llama-tiny"] {
        let m = fixture_model(name).1;
        let dev = Device::Cpu;
        let lora = lora_rank(4);
        for (what, recompute, lora) in [
            ("full", false, None),
            ("full, recompute", true, None),
            ("lora", false, Some(lora.clone())),
            ("lora, recompute", true, Some(lora)),
        ] {
            let run = |c: ComputeDtype| {
                let mut c = with_lora(cfg(c), lora.clone());
                c.optim.recompute = recompute;
                // A reference other than the policy, so the KL term has a gradient.
                c.optim.kl_coef = 0.1;
                let refw: model::Weights = m
                    .weights
                    .iter()
                    .map(|(k, v)| (k.clone(), (v * 1.02).unwrap()))
                    .collect();
                let mut t = Trainer::new(c, &m.config, &m.weights, Some(&refw), &dev).unwrap();
                let s = t.compute_gradients(&groups_from(0, 100)).unwrap();
                (s, all_grads(&t), t)
            };
            let (s32, g32, _) = run(ComputeDtype::F32);
            let (s16, g16, t16) = run(ComputeDtype::Bf16);
            let tag = format!("{name} {what}");
            assert_eq!(t16.policy().dtype(), DType::BF16, "{tag}");
            let rel = (s16.neg_logp - s32.neg_logp).abs() / s32.neg_logp.abs();
            assert!(
                rel < 1e-2,
                "{tag}: -log p {} vs {}",
                s16.neg_logp,
                s32.neg_logp
            );
            assert!(
                s32.kl > 0.0 && (s16.kl - s32.kl).abs() < 0.1 * s32.kl + 1e-4,
                "{tag}"
            );
            let (cos, dmax) = compare(&g16, &g32);
            eprintln!("{tag}: cos {cos:.6}, max diff {dmax:.2e}, -logp rel {rel:.2e}");
            assert!(cos >= 0.999, "{tag}: gradient cosine {cos}");
            assert!(dmax <= 0.05, "{tag}: gradient max difference {dmax:e}");
            // bf16 did compute: the gradients are not the f32 ones.
            assert!(g16 != g32, "{tag}: bf16 compute changed nothing");
        }
    }
}

#[test]
fn bf16_state_is_f32_and_checkpoints_are_bf16() {
    let m = fixture_model("qwen3-tiny").1;
    let dev = Device::Cpu;
    let c = cfg(ComputeDtype::Bf16);
    let mut a = Trainer::new(c.clone(), &m.config, &m.weights, None, &dev).unwrap();
    assert_eq!(a.compute_dtype(), DType::BF16);
    // A rollout's log-probs come from the bf16 policy; the update computes the same numbers,
    // so its first ratio is exactly 1.
    let mut g = groups_from(0, 100);
    a.fill_rollout_logprobs(&mut g, true).unwrap();
    let u = a.update(&g).unwrap();
    assert_eq!((u.grad.ratio_min, u.grad.ratio_max), (1.0, 1.0));
    a.end_step();
    a.step(&groups_from(1, 100)).unwrap();
    // Parameters (the Vars the graph reads), master weights and AdamW moments: f32.
    for (name, t) in a.weights() {
        assert_eq!(t.dtype(), DType::F32, "{name}");
    }
    let opt = a.optimizer();
    assert_eq!(opt.step, 2);
    assert!(opt.m.iter().any(|&x| x != 0.0) && opt.v.iter().any(|&x| x > 0.0));
    // The master weights hold updates below bf16's resolution: rounding them to bf16 loses
    // something (they are not bf16 values stored in f32).
    let rounded: Vec<f32> = a
        .master()
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    assert!(rounded != a.master(), "master weights are bf16 values");
    // The policy holds bf16 copies of the current master weights.
    assert_eq!(a.policy().dtype(), DType::BF16);

    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let files = model_files(&m);
    a.save_checkpoint(&ck, &files).unwrap();
    let w = candle_core::safetensors::load(ck.join("model/model.safetensors"), &dev).unwrap();
    assert!(!w.is_empty());
    for (name, t) in &w {
        assert_eq!(t.dtype(), DType::BF16, "saved {name}");
    }
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_json["torch_dtype"], "bfloat16");
    let o = candle_core::safetensors::load(ck.join("optimizer.safetensors"), &dev).unwrap();
    for s in a.layout().specs() {
        let t = &o[&format!("master.{}", s.name)];
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &a.master()[s.offset..s.offset + s.len],
            "{}",
            s.name
        );
        assert_eq!(o[&format!("exp_avg.{}", s.name)].dtype(), DType::F32);
    }
    // The saved model loads and is the master weights rounded to bf16.
    let l = model::load(
        ck.join("model").to_str().unwrap(),
        &model::LoadOptions {
            dtype: DType::BF16,
            ..Default::default()
        },
    )
    .unwrap();
    let e = &l.weights["model.embed_tokens.weight"];
    let spec = a
        .layout()
        .specs()
        .iter()
        .find(|s| s.name == "model.embed_tokens.weight")
        .unwrap();
    let want: Vec<f32> = a.master()[spec.offset..spec.offset + spec.len]
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    let got = e
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(got, want);

    // Resume from the f32 master weights: bit-identical.
    let mut b = Trainer::new(c, &m.config, &m.weights, None, &dev).unwrap();
    b.restore_checkpoint(&ck).unwrap();
    assert_eq!(a.master(), b.master());
    assert_eq!(a.optimizer(), b.optimizer());
    let ma = a.step(&groups_from(2, 100)).unwrap();
    let mb = b.step(&groups_from(2, 100)).unwrap();
    assert_eq!(ma.grad.loss, mb.grad.loss);
    assert_eq!(ma.update.grad_norm, mb.update.grad_norm);
    assert!(a.master() == b.master(), "resumed parameters differ");
}

#[test]
fn a_step_reports_the_process_memory() {
    let m = fixture_model("llama-tiny").1;
    let mut t = Trainer::new(
        cfg(ComputeDtype::F32),
        &m.config,
        &m.weights,
        None,
        &Device::Cpu,
    )
    .unwrap();
    let s = t.step(&groups_from(0, 100)).unwrap();
    let rss = s.mem_rss_bytes.expect("mem_rss_bytes on Linux");
    let peak = s.mem_rss_peak_bytes.expect("mem_rss_peak_bytes on Linux");
    // More than the model's f32 parameters and AdamW state, less than the machine.
    let floor = (t.layout().total() * 4 * 4) as u64;
    assert!(rss > floor && rss < 1 << 42, "rss {rss}, floor {floor}");
    assert!(peak >= rss, "peak {peak} < rss {rss}");
    assert_eq!((s.mem_device_bytes, s.mem_device_total_bytes), (None, None));
    let row = serde_json::to_value(&s).unwrap();
    assert_eq!(row["mem_rss_bytes"].as_u64(), Some(rss));
    assert!(row.get("mem_device_bytes").is_none(), "{row}");
}
