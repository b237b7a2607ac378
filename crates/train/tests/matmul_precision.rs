//! bf16 products (`OptimKnobs::matmul_precision = bf16`, f32 compute) on the GRPO fixture
//! step, for full fine-tuning, recomputation and LoRA: the loss terms and gradients are
//! within the tolerances of bf16 compute (`tests/bf16.rs`: the mean −log p within 1%, the
//! gradient's cosine with the f32 one ≥ 0.999 and its largest difference ≤ 5% of the largest
//! f32 component; here only the products' operands are rounded, not the weights), and differ
//! from f32. The KL term is within 25%: it is second order in the log-prob difference `d`
//! between the policy and a reference 2% away (KL ≈ d²/2), so an error δ in `d` moves it by
//! about 2δ/d; the two models' product roundings are largely shared, and δ of a few % of `d`
//! gives the 7-11% measured. Parameters, policy and AdamW state stay f32; the rollout
//! log-probs use the same products, so a rollout's first update sees a ratio of exactly 1.

use candle_core::{DType, Device};
use model::ops::MatmulPrecision;
use train::{GrpoConfig, LossAgg, OptimKnobs, Trainer};

mod common;
use common::*;

fn cfg(p: MatmulPrecision) -> GrpoConfig {
    GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-3,
            micro_batch_size: 2,
            matmul_precision: p,
            ..Default::default()
        },
        loss_agg: LossAgg::TokenMean,
        ..Default::default()
    }
}

#[test]
fn bf16_product_gradients_are_close_to_f32() {
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
            let run = |p: MatmulPrecision| {
                let mut c = with_lora(cfg(p), lora.clone());
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
            let (s32, g32, _) = run(MatmulPrecision::F32);
            let (s16, g16, t16) = run(MatmulPrecision::Bf16);
            let tag = format!("{name} {what}");
            assert_eq!(t16.policy().dtype(), DType::F32, "{tag}");
            assert_eq!(t16.policy().matmul_precision(), MatmulPrecision::Bf16);
            let rel = (s16.neg_logp - s32.neg_logp).abs() / s32.neg_logp.abs();
            let kl_rel = (s16.kl - s32.kl).abs() / s32.kl;
            let (cos, dmax) = compare(&g16, &g32);
            eprintln!(
                "{tag}: cos {cos:.6}, max diff {dmax:.2e}, -logp rel {rel:.2e}, kl rel {kl_rel:.2e}"
            );
            assert!(
                rel < 1e-2,
                "{tag}: -log p {} vs {}",
                s16.neg_logp,
                s32.neg_logp
            );
            assert!(
                s32.kl > 0.0 && kl_rel < 0.25,
                "{tag}: kl {} vs {}",
                s16.kl,
                s32.kl
            );
            assert!(cos >= 0.999, "{tag}: gradient cosine {cos}");
            assert!(dmax <= 0.05, "{tag}: gradient max difference {dmax:e}");
            assert!(g16 != g32, "{tag}: bf16 products changed nothing");
        }
    }
}

#[test]
fn bf16_products_keep_f32_state_and_a_first_ratio_of_one() {
    let m = fixture_model("qwen3-tiny").1;
    for recompute in [false, true] {
        let mut c = cfg(MatmulPrecision::Bf16);
        c.optim.recompute = recompute;
        let mut a = Trainer::new(c, &m.config, &m.weights, None, &Device::Cpu).unwrap();
        assert_eq!(a.compute_dtype(), DType::F32);
        let mut g = groups_from(0, 100);
        a.fill_rollout_logprobs(&mut g, true).unwrap();
        let u = a.update(&g).unwrap();
        assert_eq!(
            (u.grad.ratio_min, u.grad.ratio_max),
            (1.0, 1.0),
            "recompute {recompute}"
        );
        a.end_step();
        a.step(&groups_from(1, 100)).unwrap();
        for (name, t) in a.weights() {
            assert_eq!(t.dtype(), DType::F32, "{name}");
        }
        let opt = a.optimizer();
        assert_eq!(opt.step, 2);
        assert!(opt.m.iter().any(|&x| x != 0.0) && opt.v.iter().any(|&x| x > 0.0));
    }
}
