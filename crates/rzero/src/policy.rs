//! A trainable role: the `train` crate's trainer configured from a phase's [`Optim`]
//! section, run through the one GRPO loop ([`train::driver::run`]), and exported as a
//! Hugging Face folder.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::Optim;
use crate::error::{Error, Result};

/// A prompt with its G sampled responses and their rewards: the trainer's group.
pub type Group = train::Group;

/// One GRPO group from a prompt, its completions and their rewards.
pub fn group(prompt: Vec<u32>, completions: Vec<Vec<u32>>, rewards: Vec<f32>) -> Group {
    let masks = vec![Vec::new(); completions.len()];
    group_masked(prompt, completions, masks, rewards)
}

/// [`group`] with each completion's forced-token mask (`Sample::forced`: forced tokens get
/// no gradient; empty = none forced).
pub fn group_masked(
    prompt: Vec<u32>,
    completions: Vec<Vec<u32>>,
    forced: Vec<Vec<bool>>,
    rewards: Vec<f32>,
) -> Group {
    train::Group {
        prompt,
        responses: completions
            .into_iter()
            .zip(forced)
            .zip(rewards)
            .map(|((ids, forced), reward)| train::Response {
                ids,
                reward,
                forced,
                ..Default::default()
            })
            .collect(),
    }
}

/// The trainer's configuration for a phase whose rollouts sample at `temperature`: the
/// log-probs are computed at that temperature (`logits / T`), as the reference's actor does
/// with its rollout temperature; 0 (greedy rollouts) trains at 1.
pub fn grpo_config(optim: &Optim, temperature: f64, seed: u64) -> train::GrpoConfig {
    train::GrpoConfig {
        temperature: if temperature > 0.0 { temperature } else { 1.0 },
        lr: optim.lr,
        weight_decay: optim.weight_decay,
        kl_coef: optim.kl_coef,
        max_grad_norm: optim.max_grad_norm,
        clip_ratio_low: optim.clip_low,
        clip_ratio_high: optim.clip_high,
        clip_ratio_dual: (optim.clip_dual > 0.0).then_some(optim.clip_dual),
        micro_batch_size: optim.micro_batch_size,
        lora: (optim.lora_rank > 0).then(|| train::config::LoraConfig {
            rank: optim.lora_rank,
            alpha: (optim.lora_alpha > 0.0).then_some(optim.lora_alpha),
            target_modules: optim.lora_targets.clone(),
            merge_on_save: false,
        }),
        recompute: optim.recompute,
        shared_prompts: optim.shared_prompts,
        matmul_precision: optim.matmul_precision,
        // the reference's literal aggregation: token mean per micro-batch, averaged
        loss_agg: train::LossAgg::MicrobatchTokenMean,
        seed,
        // `--dtype bf16` trains with bf16 compute (f32 master weights and AdamW state).
        compute_dtype: train::ComputeDtype::from_dtype(model::device::default_dtype())
            .unwrap_or_default(),
        ..train::GrpoConfig::default()
    }
}

fn terr(what: &'static str) -> impl Fn(train::Error) -> Error {
    move |e| match e {
        train::Error::Diverged(m) => Error::Diverged(format!("{what}: {m}")),
        e => Error::Stage(format!("{what}: {e}")),
    }
}

/// A fresh trainer from the phase's starting model (also the KL reference).
pub fn trainer(
    start: &model::LoadedModel,
    optim: &Optim,
    temperature: f64,
    seed: u64,
) -> Result<train::Trainer> {
    train::Trainer::new(
        grpo_config(optim, temperature, seed),
        &start.config,
        &start.weights,
        None,
        &model::device::default_device(),
    )
    .map_err(terr("starting the trainer"))
}

/// Where a phase works and what it writes.
pub struct PhaseFiles {
    /// In-progress folder: `checkpoint/` and the rollout journal (removed by the caller once
    /// the phase's export exists).
    pub work: PathBuf,
    /// The metric rows (one per update, one per step).
    pub metrics: PathBuf,
    /// Fields added to every metric row.
    pub row_extra: Map<String, Value>,
}

/// Runs (or resumes) one GRPO phase to `optim.steps` and returns its trainer; its rollouts
/// sample at `temperature`.
pub fn run_phase(
    start: &model::LoadedModel,
    optim: &Optim,
    temperature: f64,
    seed: u64,
    files: &PhaseFiles,
    rollout: &mut dyn train::Rollout,
    on_progress: &mut dyn FnMut(train::Progress<'_>),
) -> Result<train::Trainer> {
    let mut t = trainer(start, optim, temperature, seed)?;
    let lc = train::LoopConfig {
        steps: optim.steps as u64,
        global_batch_size: optim.global_batch_size,
        ppo_epochs: optim.ppo_epochs,
        save_every: 1,
        work_dir: files.work.clone(),
        metrics_path: files.metrics.clone(),
        seed: crate::rollout::derive_seed(seed, &[7]),
        row_extra: files.row_extra.clone(),
    };
    let mf = train::ModelFiles {
        tokenizer: &start.tokenizer,
        chat_template: start.chat_template.as_ref(),
        generation: &start.generation,
        base_model: start.source.to_str(),
    };
    train::driver::run(&mut t, rollout, &lc, &mf, on_progress).map_err(terr("GRPO"))?;
    Ok(t)
}

/// Writes the policy as a Hugging Face folder with the starting model's tokenizer, chat
/// template and generation config.
pub fn export(t: &train::Trainer, dir: &Path, start: &model::LoadedModel) -> Result<()> {
    model::save_hf_folder(
        dir,
        &start.config,
        &t.weights(),
        &start.tokenizer,
        start.chat_template.as_ref(),
        &start.generation,
    )
    .map_err(|e| Error::Stage(format!("saving {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(m: &model::Model) -> Vec<f32> {
        let ids = candle_core::Tensor::new(&[[1u32, 2, 3, 4, 5]], m.device()).unwrap();
        m.forward(&ids, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// A phase's log-probs use its rollouts' temperature (the reference's actor divides the
    /// logits by the rollout temperature); greedy rollouts train at 1.
    #[test]
    fn log_probs_use_the_rollout_temperature() {
        let optim = crate::config::Config::demo().solver.optim;
        assert_eq!(grpo_config(&optim, 0.6, 1).temperature, 0.6);
        assert_eq!(grpo_config(&optim, 1.0, 1).temperature, 1.0);
        assert_eq!(grpo_config(&optim, 0.0, 1).temperature, 1.0);
    }

    /// A LoRA phase: it trains, a rerun resumes the finished checkpoint to the same policy,
    /// and its export (the merged model, what the next stage loads) gives the policy's logits.
    #[test]
    fn lora_phase_resumes_and_exports_merged() {
        let dir = testdata::model_dir("qwen3-tiny");
        let tmp = tempfile::tempdir().unwrap();
        let start = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        let mut optim = crate::config::Config::tiny().solver.optim;
        optim.lora_rank = 2;
        optim.lora_targets = vec!["q_proj".into(), "up_proj".into()];
        optim.recompute = true;
        optim.lr = 5e-2;
        optim.steps = 1;
        optim.global_batch_size = 1;
        let files = PhaseFiles {
            work: tmp.path().join("work"),
            metrics: tmp.path().join("metrics.jsonl"),
            row_extra: Map::new(),
        };
        let before = logits(&start.model().unwrap());
        let mut rollout = |_: u64, _: &model::Model, _: &mut train::ChaCha8Rng| {
            Ok(train::RolloutBatch {
                groups: vec![
                    group(vec![1, 2, 3], vec![vec![40, 41], vec![50]], vec![1.0, 0.0]),
                    group(vec![4, 5], vec![vec![7], vec![8, 9]], vec![0.0, 1.0]),
                ],
                metrics: Map::new(),
            })
        };
        let t = run_phase(&start, &optim, 1.0, 3, &files, &mut rollout, &mut |_| {}).unwrap();
        let after = logits(t.policy());
        assert!(before != after, "the LoRA phase changed nothing");
        assert!(files
            .work
            .join("checkpoint/adapter/adapter_config.json")
            .is_file());
        let rows = std::fs::read_to_string(&files.metrics).unwrap();
        assert_eq!(
            rows.lines().count(),
            3,
            "two update rows and one step row: {rows}"
        );
        // A rerun finds the finished checkpoint and resumes to the same policy.
        let mut never = |_: u64, _: &model::Model, _: &mut train::ChaCha8Rng| {
            Err(train::Error::Invalid(
                "no rollout after the last step".into(),
            ))
        };
        let r = run_phase(&start, &optim, 1.0, 3, &files, &mut never, &mut |_| {}).unwrap();
        assert_eq!(r.step_count(), 1);
        assert!(logits(r.policy()) == after, "the resumed policy differs");
        let out = tmp.path().join("export");
        export(&t, &out, &start).unwrap();
        let e = model::load(out.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        assert!(logits(&e.model().unwrap()) == after, "the export differs");
    }
}
