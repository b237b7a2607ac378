//! Checkpoints written before `GrpoConfig` held the `OptimKnobs` (format 1, main at eae0885)
//! still load and resume: `tests/fixtures/checkpoint-eae0885/` holds the output of that
//! commit's `rzero grpo` (LoRA rank 2 on q_proj and v_proj, one step, seed 3) and the
//! `trainer_state.json` of a full fine-tuning run with the same flags.

use candle_core::Device;
use train::{ComputeDtype, GrpoConfig, LossAgg, ModelFiles, OptimKnobs, Trainer};

mod common;
use common::*;

/// What today's `rzero grpo` builds from the flags the fixtures were made with.
fn knobs(lora_rank: usize) -> OptimKnobs {
    OptimKnobs {
        steps: 1,
        global_batch_size: 0,
        lr: 1e-2,
        lora_rank,
        lora_targets: vec!["q_proj".into(), "v_proj".into()],
        ..OptimKnobs::default()
    }
}

#[test]
fn a_format_1_lora_checkpoint_restores_resumes_and_is_rewritten_as_format_2() {
    let (_, m) = fixture_model("qwen3-tiny");
    let dev = Device::Cpu;
    let ck = testdata::path("checkpoint-eae0885/grpo-lora/checkpoint");
    let cfg = knobs(2).grpo_config(1.0, 3, ComputeDtype::F32);
    let mut a = Trainer::new(cfg.clone(), &m.config, &m.weights, None, &dev).unwrap();
    let fresh = a.master().to_vec();
    let state = a.restore_checkpoint(&ck).unwrap();
    // the old config reads as the one the same flags build today (so no "differs" warning)
    assert_eq!(state.format, 2);
    assert_eq!((state.step, state.optimizer_step), (1, 1));
    assert_eq!(state.config, cfg);
    assert_eq!((a.step_count(), a.optimizer().step), (1, 1));
    // the adapter's A came from the file: weight decay moved it off the fresh init
    assert_ne!(a.master(), &fresh[..]);

    // a resumed step runs, and its checkpoint is format 2 and restores bit for bit
    a.step(&groups_from(0, 100)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_, loaded) = fixture_model("qwen3-tiny");
    let files = ModelFiles {
        tokenizer: &loaded.tokenizer,
        chat_template: loaded.chat_template.as_ref(),
        generation: &loaded.generation,
        base_model: None,
    };
    let ck2 = tmp.path().join("ck");
    a.save_checkpoint(&ck2, &files).unwrap();
    let json = testdata::read_json(&ck2.join("trainer_state.json"));
    assert_eq!(json["format"], 2);
    assert_eq!(json["config"]["optim"]["lora_rank"], 2);
    let mut b = Trainer::new(cfg.clone(), &m.config, &m.weights, None, &dev).unwrap();
    let state = b.restore_checkpoint(&ck2).unwrap();
    assert_eq!((state.step, state.config), (2, cfg.clone()));
    assert_eq!(a.master(), b.master());
    assert_eq!(a.optimizer(), b.optimizer());
    assert_eq!(a.rng_ref(), b.rng_ref());

    // the LoRA shape is still checked against the old file's
    let rank4 = knobs(4).grpo_config(1.0, 3, ComputeDtype::F32);
    let mut c = Trainer::new(rank4, &m.config, &m.weights, None, &dev).unwrap();
    let e = c.restore_checkpoint(&ck).unwrap_err().to_string();
    assert!(e.contains("LoRA rank 2 alpha 4 on q_proj,v_proj"), "{e}");
}

#[test]
fn a_format_1_full_fine_tuning_config_reads_into_the_knobs() {
    let old = testdata::json("checkpoint-eae0885/full-trainer_state.json");
    assert_eq!(old["format"], 1);
    let c = GrpoConfig::from_format1(old["config"].clone()).unwrap();
    // format 1 had no loop knobs: they keep the defaults
    let k = OptimKnobs {
        lr: 1e-2,
        ..OptimKnobs::default()
    };
    let want = k.grpo_config(1.0, 3, ComputeDtype::F32);
    assert_eq!(c, want);
    assert_eq!(c.lora(), None);
}

/// A format-1 `config` (the JSON eae0885 wrote) reads into today's layout: renamed
/// knobs, the `lora` section as knobs, missing keys at their defaults, unknown keys
/// still errors.
#[test]
fn a_format_1_config_reads_into_the_knobs() {
    let old = serde_json::json!({
        "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
        "warmup_steps": 2, "max_grad_norm": 0.5, "clip_ratio_low": 0.1,
        "clip_ratio_high": 0.4, "clip_ratio_dual": null, "kl_coef": 0.0, "kl_clamp": 10.0,
        "adv_eps": 1e-6, "scale_adv_by_std": true, "drop_equal_reward_groups": false,
        "loss_agg": "microbatch-token-mean", "loss_norm_len": null, "micro_batch_size": 2,
        "logprob_chunk_rows": 256, "temperature": 0.7, "seed": 3,
        "lora": {"rank": 2, "alpha": null, "target_modules": ["q_proj", "v_proj"],
                 "merge_on_save": true},
        "recompute": true, "compute_dtype": "f32", "matmul_precision": "bf16",
        "shared_prompts": false
    });
    let c = GrpoConfig::from_format1(old.clone()).unwrap();
    let want = GrpoConfig {
        optim: OptimKnobs {
            lr: 0.01,
            max_grad_norm: 0.5,
            clip_low: 0.1,
            clip_high: 0.4,
            clip_dual: 0.0,
            kl_coef: 0.0,
            micro_batch_size: 2,
            lora_rank: 2,
            lora_targets: vec!["q_proj".into(), "v_proj".into()],
            recompute: true,
            matmul_precision: model::ops::MatmulPrecision::Bf16,
            shared_prompts: false,
            ..OptimKnobs::default()
        },
        warmup_steps: 2,
        loss_agg: LossAgg::MicrobatchTokenMean,
        temperature: 0.7,
        seed: 3,
        merge_lora_on_save: true,
        ..GrpoConfig::default()
    };
    assert_eq!(c, want);
    // an older file without the later keys; `lora` null; a dual clip and an alpha
    let c = GrpoConfig::from_format1(serde_json::json!({"lr": 0.5, "clip_ratio_dual": 2.0,
        "lora": null}))
    .unwrap();
    assert_eq!((c.optim.lr, c.optim.clip_dual, c.lora()), (0.5, 2.0, None));
    let c = GrpoConfig::from_format1(serde_json::json!({"lora": {"alpha": 4.0}})).unwrap();
    let l = c.lora().unwrap();
    assert_eq!((l.rank, l.alpha, l.target_modules.len()), (8, Some(4.0), 7));
    for bad in [
        serde_json::json!({"learning_rate": 1}),
        serde_json::json!({"lora": {"rnak": 4}}),
        serde_json::json!([1]),
    ] {
        assert!(GrpoConfig::from_format1(bad.clone()).is_err(), "{bad}");
    }
}
