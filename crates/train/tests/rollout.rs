//! A rollout spent in several updates, as veRL's `update_policy` spends it: old log-probs
//! frozen before the first update (ratio exactly 1 there, not after), the clip acting on
//! later mini-batches, and the driver equal to a hand-written sequence of the same steps.

use std::path::Path;

use candle_core::Device;
use serde_json::Value;
use train::driver::{minibatches, run, LoopConfig};
use train::{ChaCha8Rng, Group, GrpoConfig, OptimKnobs, RolloutBatch, Trainer};

mod common;
use common::*;

fn load(name: &str) -> model::LoadedModel {
    fixture_model(name).1
}

/// Four prompts × three responses: two mini-batches of two prompts.
fn rollout_groups() -> Vec<Group> {
    let mut g = groups_from(0, 100);
    g.extend(groups_from(3, 130));
    g
}

fn cfg(mode: &str) -> GrpoConfig {
    GrpoConfig {
        optim: OptimKnobs {
            // large enough that the second mini-batch is clipped in every mode
            lr: if mode == "lora" { 8e-2 } else { 2e-2 },
            kl_coef: 1e-2,
            micro_batch_size: 2,
            recompute: mode == "recompute",
            lora_rank: if mode == "lora" { 4 } else { 0 },
            lora_targets: vec!["q_proj".into(), "v_proj".into(), "up_proj".into()],
            ..Default::default()
        },
        seed: 5,
        ..Default::default()
    }
}

fn update_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r.get("update").is_some())
        .collect()
}

#[test]
fn minibatch_updates_freeze_old_logprobs_and_equal_a_hand_written_reference() {
    let m = load("qwen3-tiny");
    let files = model_files(&m);
    for mode in ["full", "recompute", "lora"] {
        let tmp = tempfile::tempdir().unwrap();
        let lc = LoopConfig {
            steps: 1,
            global_batch_size: 2,
            ppo_epochs: 1,
            save_every: 1,
            work_dir: tmp.path().join("work"),
            metrics_path: tmp.path().join("metrics.jsonl"),
            seed: 11,
            row_extra: Default::default(),
        };
        // 1. The driver.
        let mut a = Trainer::new(cfg(mode), &m.config, &m.weights, None, &Device::Cpu).unwrap();
        let mut rollout = |_: u64, _: &model::Model, _: &mut ChaCha8Rng| {
            Ok(RolloutBatch {
                groups: rollout_groups(),
                metrics: Default::default(),
            })
        };
        run(&mut a, &mut rollout, &lc, &files, &mut |_| {}).unwrap();
        let rows = update_rows(&lc.metrics_path);
        assert_eq!(rows.len(), 2, "{mode}: 4 prompts / 2 per update");
        let f = |r: &Value, k: &str| r[k].as_f64().unwrap();
        // The first update runs on the rollout's own policy: the ratio is exactly 1.
        assert_eq!(f(&rows[0], "ratio_min"), 1.0, "{mode}");
        assert_eq!(f(&rows[0], "ratio_max"), 1.0, "{mode}");
        assert_eq!(f(&rows[0], "ppo_kl"), 0.0, "{mode}");
        assert_eq!(f(&rows[0], "pg_clipfrac_higher"), 0.0, "{mode}");
        // The second update's policy moved (large lr): the ratio is not 1 and the clip acts.
        assert!(
            f(&rows[1], "ratio_min") < 1.0 || f(&rows[1], "ratio_max") > 1.0,
            "{mode}: {}",
            rows[1]
        );
        assert!(f(&rows[1], "ppo_kl") != 0.0, "{mode}");
        assert!(
            f(&rows[1], "pg_clipfrac_higher") > 0.0,
            "{mode}: no clipping at a large lr: {}",
            rows[1]
        );

        // 2. The same steps by hand: shuffle, freeze old (and reference) log-probs for the
        //    whole rollout, then one update per mini-batch.
        let mut b = Trainer::new(cfg(mode), &m.config, &m.weights, None, &Device::Cpu).unwrap();
        let groups = rollout_groups();
        let plan = minibatches(groups.len(), 2, 11, 0, 0);
        let mut mbs: Vec<Vec<Group>> = plan
            .iter()
            .map(|idx| idx.iter().map(|&i| groups[i].clone()).collect())
            .collect();
        for mb in &mut mbs {
            b.fill_rollout_logprobs(mb, true).unwrap();
        }
        // The frozen old log-probs are the policy's, as an independent scoring gives them.
        for mb in &mbs {
            let items: Vec<(Vec<u32>, Vec<u32>)> = mb
                .iter()
                .flat_map(|g| {
                    g.responses
                        .iter()
                        .map(|r| (g.prompt.clone(), r.ids.clone()))
                })
                .collect();
            let scored = b.policy_logprobs(&items).unwrap();
            let old: Vec<&Vec<f32>> = mb
                .iter()
                .flat_map(|g| g.responses.iter().map(|r| r.old_logprobs.as_ref().unwrap()))
                .collect();
            for (s, o) in scored.iter().zip(old) {
                for (x, y) in s.iter().zip(o) {
                    assert!((x - y).abs() < 1e-5, "{mode}: old {y} vs scored {x}");
                }
            }
        }
        for mb in &mbs {
            b.update(mb).unwrap();
        }
        b.end_step();
        assert!(
            a.master() == b.master(),
            "{mode}: driver != hand-written steps"
        );

        // 3. A negative control: recomputing the old log-probs before the second update
        //    (an on-policy loop) is a different algorithm and gives other weights.
        let mut c = Trainer::new(cfg(mode), &m.config, &m.weights, None, &Device::Cpu).unwrap();
        for mb in &plan {
            let mut mb: Vec<Group> = mb.iter().map(|&i| groups[i].clone()).collect();
            c.fill_rollout_logprobs(&mut mb, true).unwrap();
            c.update(&mb).unwrap();
        }
        assert!(
            a.master() != c.master(),
            "{mode}: the frozen old log-probs had no effect"
        );
    }
}

#[test]
fn a_nan_reward_stops_the_loop_with_diverged_and_keeps_the_last_checkpoint() {
    let m = load("llama-tiny");
    let files = model_files(&m);
    let tmp = tempfile::tempdir().unwrap();
    let lc = LoopConfig {
        steps: 3,
        global_batch_size: 1,
        ppo_epochs: 1,
        save_every: 1,
        work_dir: tmp.path().join("work"),
        metrics_path: tmp.path().join("metrics.jsonl"),
        seed: 1,
        row_extra: Default::default(),
    };
    let mut t = Trainer::new(cfg("full"), &m.config, &m.weights, None, &Device::Cpu).unwrap();
    let mut rollout = |step: u64, _: &model::Model, _: &mut ChaCha8Rng| {
        let mut g = groups_from(0, 100);
        if step == 1 {
            g[1].responses[2].reward = f32::NAN;
        }
        Ok(RolloutBatch {
            groups: g,
            metrics: Default::default(),
        })
    };
    let e = run(&mut t, &mut rollout, &lc, &files, &mut |_| {}).unwrap_err();
    assert!(matches!(e, train::Error::Diverged(_)), "{e}");
    assert!(e.to_string().contains("step 2"), "{e}");
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(lc.work_dir.join("checkpoint/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["step"], 1, "the last good checkpoint is step 1");

    // NaN weights: a NaN loss stops the loop too.
    let mut w = m.weights.clone();
    let k = w
        .keys()
        .find(|k| k.contains("mlp.up_proj"))
        .unwrap()
        .clone();
    let nan = (w[&k].clone() * f64::NAN).unwrap();
    w.insert(k, nan);
    let mut t = Trainer::new(cfg("full"), &m.config, &w, None, &Device::Cpu).unwrap();
    let lc2 = LoopConfig {
        work_dir: tmp.path().join("work2"),
        metrics_path: tmp.path().join("metrics2.jsonl"),
        ..lc
    };
    let mut ok = |_: u64, _: &model::Model, _: &mut ChaCha8Rng| {
        Ok(RolloutBatch {
            groups: groups_from(0, 100),
            metrics: Default::default(),
        })
    };
    let e = run(&mut t, &mut ok, &lc2, &files, &mut |_| {}).unwrap_err();
    assert!(matches!(e, train::Error::Diverged(_)), "{e}");
    assert!(!lc2.work_dir.join("checkpoint").exists());
}
