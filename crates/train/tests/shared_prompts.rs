//! Shared prompts (`OptimKnobs::shared_prompts`): each distinct prompt's forward once per
//! micro-batch. The loss and every parameter gradient equal the unshared computation's
//! (to 1e-5 relative) for full fine-tuning and LoRA, with and without activation
//! recomputation; log-probs filled by `fill_rollout_logprobs` give a first-update ratio of
//! exactly 1 in both layouts.

use candle_core::Device;
use model::{Config, Weights};
use train::config::LoraConfig;
use train::{Group, GrpoConfig, LossAgg, OptimKnobs, Trainer};

mod common;
use common::*;

/// Three groups of 4: two share their prompt (as every Challenger group of a rollout does),
/// responses of different lengths, one with forced tokens.
fn groups(shift: u32) -> Vec<Group> {
    let challenger = vec![1, 40 + shift, 41, 42, 43, 44, 45, 46, 47];
    let mut forced = resp(&[30, 31, 32, 33], 0.25);
    forced.forced = vec![false, true, true, false];
    vec![
        Group {
            prompt: challenger.clone(),
            responses: vec![
                resp(&[50, 51, 52, 2], 1.0),
                resp(&[60, 61], 0.0),
                resp(&[70, 71, 72, 73, 74, 75], 0.5),
                forced,
            ],
        },
        Group {
            prompt: vec![1, 90, 91 + shift],
            responses: vec![
                resp(&[10, 11, 12, 13, 14], 0.0),
                resp(&[20], 1.0),
                resp(&[21, 22, 23], 1.0),
                resp(&[24, 25, 26], 0.5),
            ],
        },
        Group {
            prompt: challenger,
            responses: vec![
                resp(&[80, 81, 82], 0.0),
                resp(&[83, 84, 85, 86, 87], 1.0),
                resp(&[88], 0.0),
                resp(&[89, 2], 1.0),
            ],
        },
    ]
}

/// A reference 5% off the policy, so the KL term has a gradient too.
fn shifted(w: &Weights) -> Weights {
    w.iter()
        .map(|(k, v)| (k.clone(), (v * 1.05).unwrap()))
        .collect()
}

/// One step (so LoRA's B is non-zero and old log-probs differ from the policy's), then the
/// gradient of another batch shared and unshared on the same trainer.
fn check(what: &str, cfg: &Config, w: &Weights, lora: Option<LoraConfig>, recompute: bool) {
    let c = GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-2,
            micro_batch_size: 2,
            kl_coef: 0.1,
            recompute,
            ..Default::default()
        },
        logprob_chunk_rows: 5,
        temperature: 0.7,
        loss_agg: LossAgg::MicrobatchTokenMean,
        ..Default::default()
    };
    let c = with_lora(c, lora);
    let refw = shifted(w);
    let mut t = Trainer::new(c, cfg, w, Some(&refw), &Device::Cpu).unwrap();
    t.step(&groups(0)).unwrap();
    let mut old = groups(1);
    // Old log-probs from a policy one step back (the ratio is not 1).
    t.fill_rollout_logprobs(&mut old, true).unwrap();
    t.step(&groups(2)).unwrap();
    t.set_shared_prompts(false);
    let plain = t.compute_gradients(&old).unwrap();
    let g_plain = all_grads(&t);
    t.set_shared_prompts(true);
    let shared = t.compute_gradients(&old).unwrap();
    let g_shared = all_grads(&t);
    let d = max_rel_diff(&g_shared, &g_plain);
    eprintln!(
        "{what}: max relative gradient difference {d:.2e}, loss {} vs {}",
        shared.loss, plain.loss
    );
    assert!(
        g_plain.iter().filter(|&&g| g != 0.0).count() > g_plain.len() / 2,
        "{what}: the gradient is mostly zero"
    );
    assert!(d <= 1e-5, "{what}: sharing changes the gradient by {d:e}");
    assert!(
        (shared.loss - plain.loss).abs() <= 1e-5 * plain.loss.abs().max(1e-3),
        "{what}: loss {} vs {}",
        shared.loss,
        plain.loss
    );
    assert!((shared.kl - plain.kl).abs() <= 1e-5 * plain.kl.abs().max(1e-3));
    assert!((shared.entropy - plain.entropy).abs() <= 1e-5 * plain.entropy.abs());
    assert_eq!(shared.response_tokens, plain.response_tokens);
    assert!(
        plain.ratio_max > plain.ratio_min,
        "{what}: the ratio is constant"
    );
    // Per parameter: no tensor's gradient may be lost (e.g. the embedding's).
    for s in t.layout().specs() {
        let a = t.grad(&s.name).unwrap();
        assert!(
            a.iter().any(|&x| x != 0.0),
            "{what}: {} has no gradient with shared prompts",
            s.name
        );
    }
    // Log-probs filled in the shared layout: the first update's ratio is exactly 1.
    let mut fresh = groups(3);
    t.fill_rollout_logprobs(&mut fresh, true).unwrap();
    let s = t.compute_gradients(&fresh).unwrap();
    assert_eq!((s.ratio_min, s.ratio_max), (1.0, 1.0), "{what}");
    assert_eq!(s.ppo_kl, 0.0, "{what}");
}

fn lora(rank: usize) -> Option<LoraConfig> {
    Some(LoraConfig {
        rank,
        alpha: Some(3.0 * rank as f64),
        target_modules: ["q_proj", "v_proj", "o_proj", "down_proj"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        merge_on_save: false,
    })
}

#[test]
fn shared_prompts_give_the_unshared_gradients_full() {
    let (cfg, w) = random_qwen2(777);
    check("random qwen2, full", &cfg, &w, None, false);
    let (_, m) = fixture_model("qwen3-tiny");
    check("qwen3-tiny, full", &m.config, &m.weights, None, false);
    let (_, m) = fixture_model("llama-tiny");
    check("llama-tiny, full", &m.config, &m.weights, None, false);
}

#[test]
fn shared_prompts_give_the_unshared_gradients_recompute() {
    let (cfg, w) = random_qwen2(777);
    check("random qwen2, full, recompute", &cfg, &w, None, true);
    let (_, m) = fixture_model("qwen3-tiny");
    check(
        "qwen3-tiny, full, recompute",
        &m.config,
        &m.weights,
        None,
        true,
    );
}

#[test]
fn shared_prompts_give_the_unshared_gradients_lora() {
    let (cfg, w) = random_qwen2(777);
    check("random qwen2, lora", &cfg, &w, lora(4), false);
    check("random qwen2, lora, recompute", &cfg, &w, lora(4), true);
}
