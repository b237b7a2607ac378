//! A trainable role: the GRPO trainer of the `train` crate, configured from a phase's
//! [`Optim`] section, with per-step checkpoints and a Hugging Face export.

use std::path::Path;

use serde_json::Value;

use crate::config::Optim;
use crate::error::{Error, Result};

/// A prompt with its G sampled responses and their rewards.
#[derive(Debug, Clone)]
pub struct Group {
    /// Prompt ids (chat template applied).
    pub prompt: Vec<u32>,
    /// Response ids.
    pub completions: Vec<Vec<u32>>,
    /// Rewards, one per response.
    pub rewards: Vec<f32>,
}

/// The policy being trained in one phase.
pub struct Policy {
    trainer: train::Trainer,
}

fn grpo_config(optim: &Optim, seed: u64) -> train::GrpoConfig {
    train::GrpoConfig {
        lr: optim.lr,
        weight_decay: optim.weight_decay,
        kl_coef: optim.kl_coef,
        max_grad_norm: optim.max_grad_norm,
        clip_ratio_low: optim.clip_low,
        clip_ratio_high: optim.clip_high,
        micro_batch_size: optim.micro_batch,
        lora: (optim.lora_rank > 0).then(|| train::config::LoraConfig {
            rank: optim.lora_rank,
            alpha: (optim.lora_alpha > 0.0).then_some(optim.lora_alpha),
            target_modules: optim.lora_targets.clone(),
            merge_on_save: false,
        }),
        recompute: optim.recompute,
        // the reference's literal aggregation: token mean per micro-batch, averaged
        loss_agg: train::LossAgg::MicrobatchTokenMean,
        seed,
        ..train::GrpoConfig::default()
    }
}

fn terr(what: &'static str) -> impl Fn(train::Error) -> Error {
    move |e| Error::Stage(format!("{what}: {e}"))
}

impl Policy {
    /// A fresh trainer from the phase's starting model (also the KL reference).
    pub fn start(start: &model::LoadedModel, optim: &Optim, seed: u64) -> Result<Self> {
        let trainer = train::Trainer::new(
            grpo_config(optim, seed),
            &start.config,
            &start.weights,
            None,
            &model::device::default_device(),
        )
        .map_err(terr("starting the trainer"))?;
        Ok(Self { trainer })
    }

    /// Resumes from a checkpoint written by [`Policy::checkpoint`]; the KL reference is the
    /// phase's starting model.
    pub fn resume(
        dir: &Path,
        start: &model::LoadedModel,
        optim: &Optim,
        seed: u64,
    ) -> Result<Self> {
        let mut p = Self::start(start, optim, seed)?;
        p.trainer
            .restore_checkpoint(dir)
            .map_err(terr("resuming the trainer"))?;
        Ok(p)
    }

    /// GRPO steps done.
    pub fn steps_done(&self) -> usize {
        self.trainer.step_count() as usize
    }

    /// The live policy (its weights change in place with every update).
    pub fn model(&self) -> &model::Model {
        self.trainer.policy()
    }

    /// One GRPO step; returns the step's metrics (loss, kl, clip fraction, grad norm, ...).
    pub fn update(&mut self, groups: &[Group]) -> Result<Value> {
        let groups: Vec<train::Group> = groups
            .iter()
            .filter(|g| !g.completions.is_empty())
            .map(|g| train::Group {
                prompt: g.prompt.clone(),
                responses: g
                    .completions
                    .iter()
                    .zip(&g.rewards)
                    .map(|(ids, &reward)| train::Response {
                        ids: ids.clone(),
                        reward,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        let m = self.trainer.step(&groups).map_err(terr("GRPO step"))?;
        let mut v = serde_json::to_value(&m).map_err(|e| Error::Stage(e.to_string()))?;
        if let Value::Object(o) = &mut v {
            o.remove("step");
        }
        Ok(v)
    }

    /// Saves weights, optimizer and RNG state atomically into `dir`.
    pub fn checkpoint(&self, dir: &Path, start: &model::LoadedModel) -> Result<()> {
        let files = train::ModelFiles {
            tokenizer: &start.tokenizer,
            chat_template: start.chat_template.as_ref(),
            generation: &start.generation,
            base_model: start.source.to_str(),
        };
        self.trainer
            .save_checkpoint(dir, &files)
            .map_err(terr("saving a checkpoint"))
    }

    /// Writes the policy as a Hugging Face folder with the starting model's tokenizer,
    /// chat template and generation config.
    pub fn export(&self, dir: &Path, start: &model::LoadedModel) -> Result<()> {
        model::save_hf_folder(
            dir,
            &start.config,
            &self.trainer.weights(),
            &start.tokenizer,
            start.chat_template.as_ref(),
            &start.generation,
        )
        .map_err(|e| Error::Stage(format!("saving {}: {e}", dir.display())))
    }
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

    /// A LoRA phase: its checkpoint resumes to the same policy and its export (the merged
    /// model, what the next stage loads) gives the policy's logits.
    #[test]
    fn lora_policy_checkpoints_resumes_and_exports_merged() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/models/qwen3-tiny");
        if !dir.join("config.json").is_file() {
            eprintln!("skipping: {} not found", dir.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let start = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        let mut optim = crate::config::Config::tiny().solver.optim;
        optim.lora_rank = 2;
        optim.lora_targets = vec!["q_proj".into(), "up_proj".into()];
        optim.recompute = true;
        optim.lr = 5e-2;
        let mut p = Policy::start(&start, &optim, 3).unwrap();
        let before = logits(p.model());
        let groups = vec![Group {
            prompt: vec![1, 2, 3],
            completions: vec![vec![40, 41], vec![50]],
            rewards: vec![1.0, 0.0],
        }];
        p.update(&groups).unwrap();
        let after = logits(p.model());
        assert!(before != after, "the LoRA step changed nothing");
        let ck = tmp.path().join("ck");
        p.checkpoint(&ck, &start).unwrap();
        assert!(ck.join("adapter/adapter_config.json").is_file());
        let r = Policy::resume(&ck, &start, &optim, 3).unwrap();
        assert_eq!(r.steps_done(), 1);
        assert!(logits(r.model()) == after, "the resumed policy differs");
        let out = tmp.path().join("export");
        p.export(&out, &start).unwrap();
        let e = model::load(out.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        assert!(logits(&e.model().unwrap()) == after, "the export differs");
    }
}
