//! The weight-gradient sink (`model::ops::GradSink`, `Trainer::set_weight_grad_sink`): the
//! decoder layers' matrices add `dW` straight into the flat gradient buffer during backward
//! instead of going through candle's gradient store. The gradients, and the weights after
//! AdamW steps, are the same bit for bit with and without it: full fine-tuning with
//! micro-batches of 1 and 2, activation recomputation, shared prompts, bf16 products (the
//! head packed once for its chunks included), and
//! LoRA (where the sink is not used), on tied (llama, qwen3) and untied (qwen2) fixtures.

use candle_core::Device;
use model::ops::MatmulPrecision;
use model::Weights;
use train::{Group, GrpoConfig, LossAgg, Trainer};

mod common;
use common::*;

/// Two groups sharing their prompt and one of its own, responses of different lengths.
fn groups() -> Vec<Group> {
    let mut g = groups_from(0, 100);
    let shared = Group {
        prompt: g[0].prompt.clone(),
        responses: vec![resp(&[80, 81, 82], 0.0), resp(&[83, 84, 85, 86, 87], 1.0)],
    };
    g.push(shared);
    g
}

/// A reference 3% off the policy, so the KL term has a gradient too.
fn shifted(w: &Weights) -> Weights {
    w.iter()
        .map(|(k, v)| (k.clone(), (v * 1.03).unwrap()))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gradients_with_the_sink_equal_candles_bit_for_bit() {
    let mut base = GrpoConfig {
        loss_agg: LossAgg::TokenMean,
        ..Default::default()
    };
    base.optim.lr = 1e-3;
    base.optim.kl_coef = 0.1;
    // `base` with micro-batches of 2 and what `f` sets.
    let mb2 = |f: &dyn Fn(&mut GrpoConfig)| {
        let mut c = base.clone();
        c.optim.micro_batch_size = 2;
        f(&mut c);
        c
    };
    let lora = |c: GrpoConfig| with_lora(c, Some(lora_rank(4)));
    let variants: Vec<(&str, GrpoConfig)> = vec![
        ("full, micro-batch 1", base.clone()),
        ("full, micro-batch 2", mb2(&|_| {})),
        (
            "recompute, micro-batch 2",
            mb2(&|c| c.optim.recompute = true),
        ),
        (
            "shared prompts, micro-batch 2",
            mb2(&|c| c.optim.shared_prompts = true),
        ),
        (
            "shared prompts, recompute",
            mb2(&|c| {
                c.optim.shared_prompts = true;
                c.optim.recompute = true;
            }),
        ),
        (
            "bf16 products, micro-batch 2",
            mb2(&|c| c.optim.matmul_precision = MatmulPrecision::Bf16),
        ),
        (
            // chunks of 2 rows: the head is packed once for its chunks (ops/head.rs)
            "bf16 products, head in chunks",
            mb2(&|c| {
                c.optim.matmul_precision = MatmulPrecision::Bf16;
                c.logprob_chunk_rows = 2;
            }),
        ),
        ("lora, micro-batch 2", lora(mb2(&|_| {}))),
        ("lora, recompute", lora(mb2(&|c| c.optim.recompute = true))),
    ];
    let dev = Device::Cpu;
    for name in ["llama-tiny", "qwen2-tiny", "qwen3-tiny"] {
        let m = fixture_model(name).1;
        let refw = shifted(&m.weights);
        for (what, c) in &variants {
            let tag = format!("{name}, {what}");
            let new = |sink: bool| {
                let mut t =
                    Trainer::new(c.clone(), &m.config, &m.weights, Some(&refw), &dev).unwrap();
                t.set_weight_grad_sink(sink);
                t
            };
            let (mut on, mut off) = (new(true), new(false));
            // Two updates (LoRA's B becomes non-zero), then one more gradient.
            for _ in 0..2 {
                on.step(&groups()).unwrap();
                off.step(&groups()).unwrap();
                assert_eq!(bits(on.master()), bits(off.master()), "{tag}: weights");
            }
            on.compute_gradients(&groups()).unwrap();
            off.compute_gradients(&groups()).unwrap();
            let (g_on, g_off) = (all_grads(&on), all_grads(&off));
            assert_eq!(bits(&g_on), bits(&g_off), "{tag}: gradients");
            // The sunk weights have a gradient (not a buffer left untouched).
            let spec = on
                .layout()
                .specs()
                .iter()
                .find(|s| s.name.contains("layers.1.") && s.name.contains("down_proj"))
                .unwrap_or_else(|| panic!("{tag}: no layer-1 down_proj parameter"));
            let g = on.grad(&spec.name).unwrap();
            assert!(
                g.iter().any(|&x| x != 0.0) && g.iter().all(|x| x.is_finite()),
                "{tag}: {} has no gradient",
                spec.name
            );
            // Toggling back on the same trainer gives the same gradient again.
            off.set_weight_grad_sink(true);
            off.compute_gradients(&groups()).unwrap();
            assert_eq!(bits(&all_grads(&off)), bits(&g_on), "{tag}: toggled on");
        }
    }
}
