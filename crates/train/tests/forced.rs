//! Forced tokens (`Response::forced`, a forced-answer cue written by the engine) are in the
//! context but have no loss term: the loss and every gradient are bit-identical whatever
//! their behaviour and reference log-probs are, while the model's own tokens after them
//! still count.

use candle_core::Device;
use train::{Group, GrpoConfig, OptimKnobs, Trainer};

mod common;
use common::*;

fn cfg() -> GrpoConfig {
    GrpoConfig {
        optim: OptimKnobs {
            lr: 1e-3,
            micro_batch_size: 2,
            kl_coef: 0.05,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The groups with the behaviour and reference log-probs of the current policy filled in,
/// and a "cue" at positions 1..3 of every response of length >= 4 (its own tokens first,
/// then the cue, then the model's answer).
fn forced_groups(t: &Trainer) -> Vec<Group> {
    let mut g = groups_from(0, 100);
    t.fill_rollout_logprobs(&mut g, true).unwrap();
    for grp in &mut g {
        for r in &mut grp.responses {
            if r.ids.len() >= 4 {
                r.forced = (0..r.ids.len()).map(|j| (1..3).contains(&j)).collect();
            }
        }
    }
    g
}

/// Replaces the behaviour and reference log-probs at the positions where `pick` is true.
fn perturb(groups: &mut [Group], pick: impl Fn(&[bool], usize) -> bool) {
    for grp in groups {
        for r in &mut grp.responses {
            let mask = r.forced.clone();
            for (j, (o, rf)) in r
                .old_logprobs
                .as_mut()
                .unwrap()
                .iter_mut()
                .zip(r.ref_logprobs.as_mut().unwrap().iter_mut())
                .enumerate()
            {
                if pick(&mask, j) {
                    *o -= 3.0;
                    *rf += 2.5;
                }
            }
        }
    }
}

#[test]
fn forced_tokens_get_no_gradient_and_the_answer_after_them_does() {
    let (_, m) = fixture_model("qwen2-tiny");
    let dev = Device::Cpu;
    let new = || Trainer::new(cfg(), &m.config, &m.weights, Some(&m.weights), &dev).unwrap();
    let base = forced_groups(&new());
    assert!(base
        .iter()
        .flat_map(|g| &g.responses)
        .any(|r| r.forced.iter().any(|&f| f)));

    let mut a = new();
    let sa = a.compute_gradients(&base).unwrap();
    let ga = all_grads(&a);
    assert!(
        ga.iter().any(|&x| x != 0.0),
        "the unforced tokens have gradient"
    );

    // Other log-probs at the forced positions: loss and gradient bit-identical.
    let mut moved = base.clone();
    perturb(&mut moved, |mask, j| mask.get(j) == Some(&true));
    let mut b = new();
    let sb = b.compute_gradients(&moved).unwrap();
    assert_eq!(sa.loss, sb.loss);
    assert_eq!(sa.kl, sb.kl);
    assert_eq!(ga, all_grads(&b), "forced tokens changed the gradient");

    // The same change at the model's answer tokens after the cue does change the loss.
    let mut answer = base.clone();
    perturb(&mut answer, |mask, j| !mask.is_empty() && j >= 3);
    let mut c = new();
    let sc = c.compute_gradients(&answer).unwrap();
    assert_ne!(sa.loss, sc.loss, "answer tokens after the cue must count");
    assert_ne!(ga, all_grads(&c));

    // Without the mask the cue is trained on: a different gradient.
    let mut unmasked = moved.clone();
    for grp in &mut unmasked {
        for r in &mut grp.responses {
            r.forced.clear();
        }
    }
    let mut d = new();
    d.compute_gradients(&unmasked).unwrap();
    assert_ne!(ga, all_grads(&d));

    // A response whose every token is forced contributes nothing at all: the gradient
    // equals the one with its log-probs moved anywhere.
    let mut all = base.clone();
    for r in &mut all[0].responses {
        r.forced = vec![true; r.ids.len()];
    }
    let mut e = new();
    let se = e.compute_gradients(&all).unwrap();
    let mut all_moved = all.clone();
    perturb(&mut all_moved[..1], |_, _| true);
    let mut f = new();
    let sf = f.compute_gradients(&all_moved).unwrap();
    assert_eq!(se.loss, sf.loss);
    assert_eq!(all_grads(&e), all_grads(&f));
}

#[test]
fn a_mask_of_the_wrong_length_is_an_error_naming_the_response() {
    let (_, m) = fixture_model("llama-tiny");
    let mut t = Trainer::new(cfg(), &m.config, &m.weights, None, &Device::Cpu).unwrap();
    let mut g = groups_from(0, 100);
    g[1].responses[2].forced = vec![true];
    let e = t.compute_gradients(&g).unwrap_err().to_string();
    assert!(
        e.contains("group 1 response 2") && e.contains("forced"),
        "{e}"
    );
}
