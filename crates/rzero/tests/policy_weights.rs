//! `engine.policy_weights = "bf16"`: a trained policy (f32 weights, no GGUF blocks) sampled
//! through bf16 copies of its matrices gives the f32 policy's greedy tokens on the chain
//! model up to the first near-tie (a top-2 margin within twice the rounding's logit change),
//! and its logits stay within a stated bound of the f32 ones (2 % of their range).

use candle_core::Device;
use engine::{LocalSampler, PolicyWeights};
use model::SeqInput;
use train::{Group, GrpoConfig, Response, Trainer};

fn sampling(temperature: f64, max_new_tokens: usize) -> engine::SamplingKnobs {
    engine::SamplingKnobs {
        temperature,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens,
    }
}

/// Logits of the last token of `ids` on `m`'s packed path.
fn last_logits(m: &model::Model, ids: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache();
    let mut seqs = [SeqInput {
        tokens: ids,
        cache: &mut cache,
    }];
    m.forward_packed(&mut seqs)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn trained_policy_samples_the_same_greedy_tokens_through_bf16_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    rzero::testing::write_chain_model(&dir).unwrap();
    let loaded = model::load(&dir.to_string_lossy(), &model::LoadOptions::default()).unwrap();
    let base = rzero::Config::tiny().engine;
    let f32_engine = engine::EngineKnobs {
        policy_weights: PolicyWeights::F32,
        ..base.clone()
    };
    let bf16_engine = engine::EngineKnobs {
        policy_weights: PolicyWeights::Bf16,
        ..base
    };

    // 1. A trained policy: one GRPO step on responses sampled from it.
    let mut trainer = Trainer::new(
        GrpoConfig {
            optim: train::OptimKnobs {
                lr: 1e-2,
                ..Default::default()
            },
            seed: 3,
            ..Default::default()
        },
        &loaded.config,
        &loaded.weights,
        None,
        &Device::Cpu,
    )
    .unwrap();
    let prompt = {
        let role = rzero::rollout::Role::local(trainer.policy(), &loaded, &f32_engine).unwrap();
        let text = rzero::prompts::challenger_prompt(role.template, false, "").unwrap();
        role.encode(&text).unwrap()
    };
    let samples = {
        let role = rzero::rollout::Role::local(trainer.policy(), &loaded, &f32_engine).unwrap();
        role.sample(
            std::slice::from_ref(&prompt),
            4,
            &sampling(1.0, 12),
            5,
            &mut |_, _| {},
        )
        .unwrap()
        .remove(0)
    };
    let group = Group {
        prompt: prompt.clone(),
        responses: samples
            .iter()
            .enumerate()
            .map(|(i, s)| Response {
                ids: s.token_ids.clone(),
                reward: [1.0, 0.0, 0.5, 0.0][i],
                ..Default::default()
            })
            .collect(),
    };
    let before = last_logits(trainer.policy(), &prompt);
    trainer.step(&[group]).unwrap();
    let policy = trainer.policy();
    let after = last_logits(policy, &prompt);
    assert_ne!(before, after, "the step changed nothing");
    assert_eq!(
        policy.compact_count(),
        0,
        "a trained policy has no block copies"
    );

    // 2. The bf16 sampler reads every matrix from a bf16 copy; the f32 one none.
    let cfg = f32_engine.engine_config(loaded.eos_token_ids());
    let s16 = LocalSampler::with_weights(
        policy,
        &loaded.tokenizer,
        None,
        cfg.clone(),
        PolicyWeights::Bf16,
    )
    .unwrap();
    let s32 = LocalSampler::with_weights(policy, &loaded.tokenizer, None, cfg, PolicyWeights::F32)
        .unwrap();
    let layers = loaded.config.num_hidden_layers;
    assert_eq!(s16.engine().model().compact_count(), 7 * layers + 1);
    assert_eq!(s32.engine().model().compact_count(), 0);
    assert_eq!(
        policy.compact_count(),
        0,
        "the policy itself is left as it was"
    );

    // 3. Logits: the bf16 rounding shows, within a bound. bf16 keeps 8 bits of mantissa
    // (relative rounding error ≤ 2^-9 per weight); the chain model's logits move by less
    // than 2 % of their range.
    let l16 = last_logits(s16.engine().model(), &prompt);
    assert_eq!(last_logits(s32.engine().model(), &prompt), after);
    let range = after.iter().cloned().fold(f32::MIN, f32::max)
        - after.iter().cloned().fold(f32::MAX, f32::min);
    let diff = l16
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("bf16 vs f32 logits: max |diff| {diff:.3e}, range {range:.3}");
    assert!(diff > 0.0, "bf16 copies not used");
    assert!(diff <= 0.02 * range, "max |diff| {diff} vs range {range}");

    // 4. Greedy rollouts through Role::local: the same tokens up to the first near-tie, a
    // position where the f32 policy's top-2 logit margin is within twice the bf16 rounding's
    // largest logit change there (such a tie may go either way; the chain model has one
    // late in this rollout). Before it, the bf16 argmax must be the f32 one.
    let greedy = |engine: &engine::EngineKnobs| {
        let role = rzero::rollout::Role::local(policy, &loaded, engine).unwrap();
        role.sample(
            std::slice::from_ref(&prompt),
            1,
            &sampling(0.0, 48),
            9,
            &mut |_, _| {},
        )
        .unwrap()
        .remove(0)
        .remove(0)
        .token_ids
    };
    let (t32, t16) = (greedy(&f32_engine), greedy(&bf16_engine));
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let mut ctx = prompt.clone();
    let mut agree = t32.len();
    for (i, &tok) in t32.iter().enumerate() {
        let (a, b) = (
            last_logits(policy, &ctx),
            last_logits(s16.engine().model(), &ctx),
        );
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let top = argmax(&a);
        let second = a
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != top)
            .map(|(_, &x)| x)
            .fold(f32::MIN, f32::max);
        if a[top] - second <= 2.0 * d + 1e-4 {
            agree = i;
            break;
        }
        assert_eq!(top as u32, tok, "f32 greedy token {i}");
        assert_eq!(
            argmax(&b),
            top,
            "bf16 argmax at token {i} (margin {})",
            a[top] - second
        );
        ctx.push(tok);
    }
    eprintln!("greedy tokens: f32 {t32:?}, bf16 {t16:?}; no near-tie before token {agree}");
    assert!(
        agree >= 5,
        "a near-tie at token {agree}: too short a comparison"
    );
    assert_eq!(t16[..agree], t32[..agree]);
}
