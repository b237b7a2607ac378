//! Checkpoints: everything an exact resume needs, written atomically.
//!
//! ```text
//! DIR/
//!   model/                   Hugging Face folder (config.json, model.safetensors in the
//!                            model's dtype: f32, or bf16 with `compute_dtype = "bf16"`,
//!                            tokenizer.json, tokenizer_config.json with the chat template,
//!                            generation_config.json): loadable by transformers and `rzero`.
//!                            With LoRA: the merged weights W + s·B·A, written only when
//!                            `merge_lora_on_save` is set.
//!   adapter/                 LoRA only: the PEFT adapter (adapter_config.json,
//!                            adapter_model.safetensors with A and B in f32), loadable by PEFT,
//!                            vLLM (`--lora-modules`) and `rzero` (`model::load` merges it
//!                            into its base_model_name_or_path)
//!   optimizer.safetensors    exp_avg.<name>, exp_avg_sq.<name> (f32); with bf16 full
//!                            fine-tuning also master.<name> (the f32 master weights);
//!                            metadata: format
//!   trainer_state.json       format (2), step, optimizer step, RNG state, the GrpoConfig
//!                            (format 1, to eae0885, still reads)
//! ```
//!
//! The whole folder is written under a temporary sibling name and renamed over `DIR`
//! (an existing `DIR` is renamed away first, then removed: [`fsutil::write_folder_atomic`]). The trained parameters are
//! saved as the f32 master weights (full fine-tuning: `model/`, or `master.*` in the
//! optimizer file when the model is saved in bf16; LoRA: `adapter/`), so restoring gives
//! bit-identical parameters.

use std::collections::HashMap;
use std::path::Path;

use model::{ChatTemplate, GenerationConfig, Tokenizer};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};

use crate::config::GrpoConfig;
use crate::trainer::{with_f32, Trainer};
use crate::{Error, Result};

/// The non-weight files of the model folder, as loaded (`model::LoadedModel` fields).
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// The chat template, saved into `tokenizer_config.json`.
    pub chat_template: Option<&'a ChatTemplate>,
    /// Generation defaults.
    pub generation: &'a GenerationConfig,
    /// The base model's folder, file or hub id: a LoRA adapter's `base_model_name_or_path`.
    pub base_model: Option<&'a str>,
}

/// The RNG's exact position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte ChaCha8 seed, hex.
    pub seed: String,
    /// Stream id.
    pub stream: u64,
    /// Word position (u128 as a decimal string).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the RNG at the captured position.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bad = || Error::invalid(format!("bad RNG state {self:?}"));
        if self.seed.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().map_err(|_| bad())?);
        Ok(rng)
    }
}

/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// Format version: 2 (format 1, to eae0885, held the config in its old layout:
    /// [`GrpoConfig::from_format1`] reads it).
    pub format: u32,
    /// Training steps taken.
    pub step: u64,
    /// Optimizer steps taken (skipped updates excluded).
    pub optimizer_step: u64,
    /// The trainer's RNG.
    pub rng: RngState,
    /// The configuration the steps ran with.
    pub config: GrpoConfig,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Writes `bytes` to the new file `path` and flushes it to disk.
fn load_safetensors(path: &Path) -> Result<HashMap<String, candle_core::Tensor>> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

impl Trainer {
    /// Writes a checkpoint folder at `dir` (see the module docs); atomic.
    pub fn save_checkpoint(&self, dir: &Path, files: &ModelFiles<'_>) -> Result<()> {
        // the folder is filled as a temporary sibling and renamed over `dir` (fsutil)
        fsutil::write_folder_atomic(dir, |tmp| -> Result<()> {
            if let Some(adapter) = self.adapter(files.base_model)? {
                let dir = tmp.join("adapter");
                std::fs::create_dir(&dir).map_err(io(&dir))?;
                adapter.write_files(&dir)?;
            }
            if self.lora().is_none_or(|l| l.merge_on_save) {
                model::save_hf_folder(
                    &tmp.join("model"),
                    self.model_config(),
                    &self.model_weights()?,
                    files.tokenizer,
                    files.chat_template,
                    files.generation,
                )?;
            }
            self.write_optimizer(&tmp.join("optimizer.safetensors"))?;
            let state = TrainerState {
                format: 2,
                step: self.step_count(),
                optimizer_step: self.optimizer().step,
                rng: RngState::capture(self.rng_ref()),
                config: self.config().clone(),
            };
            let path = tmp.join("trainer_state.json");
            let text = serde_json::to_string_pretty(&state)
                .map_err(|e| Error::invalid(format!("trainer state: {e}")))?;
            write_synced(&path, (text + "\n").as_bytes())
        })?;
        tracing::info!(dir = %dir.display(), step = self.step_count(), "checkpoint saved");
        Ok(())
    }

    fn write_optimizer(&self, path: &Path) -> Result<()> {
        let opt = self.optimizer();
        let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let master_here = self.masters_in_optimizer();
        for s in self.layout().specs() {
            let r = s.offset..s.offset + s.len;
            if master_here {
                bufs.push((
                    format!("master.{}", s.name),
                    s.shape.clone(),
                    f32_bytes(&self.master()[r.clone()]),
                ));
            }
            bufs.push((
                format!("exp_avg.{}", s.name),
                s.shape.clone(),
                f32_bytes(&opt.m[r.clone()]),
            ));
            bufs.push((
                format!("exp_avg_sq.{}", s.name),
                s.shape.clone(),
                f32_bytes(&opt.v[r]),
            ));
        }
        let views = bufs
            .iter()
            .map(|(n, shape, b)| {
                TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::invalid(format!("optimizer tensor {n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // One metadata key: a HashMap's order is per process, and two keys would make the
        // header (and the file) differ between a resumed and an uninterrupted run. The step
        // lives in trainer_state.json.
        let meta = HashMap::from([("format".to_string(), "rzero-adamw-1".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            msg: format!("cannot write: {e}"),
        })?;
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(io(path))
    }

    /// Restores weights, optimizer state, step and RNG from a checkpoint folder written by
    /// [`Trainer::save_checkpoint`] for the same model. The trainer keeps its own
    /// configuration and reference policy (a different configuration is logged).
    pub fn restore_checkpoint(&mut self, dir: &Path) -> Result<TrainerState> {
        let state = self.read_trainer_state(&dir.join("trainer_state.json"))?;
        // Optimizer moments (and, for a bf16 model, the f32 master weights).
        let op = dir.join("optimizer.safetensors");
        let o = load_safetensors(&op)?;
        let in_opt = self
            .layout()
            .specs()
            .first()
            .is_some_and(|s| o.contains_key(&format!("master.{}", s.name)));
        let master = if in_opt {
            self.read_master(&o, &op, "master.", true)?
        } else if self.lora().is_some() {
            // LoRA: PEFT-named A and B.
            let wp = dir.join("adapter").join(model::lora::ADAPTER_WEIGHTS);
            self.read_master(
                &load_safetensors(&wp)?,
                &wp,
                model::lora::PEFT_PREFIX,
                false,
            )?
        } else {
            let wp = dir.join("model/model.safetensors");
            self.read_master(&load_safetensors(&wp)?, &wp, "", false)?
        };
        self.read_moments(&o, &op)?;
        self.opt_mut().step = state.optimizer_step;
        self.set_master(master)?;
        self.set_step(state.step);
        self.set_rng(state.rng.restore()?);
        tracing::info!(dir = %dir.display(), step = state.step, "checkpoint restored");
        Ok(state)
    }

    /// `trainer_state.json`, checked against this trainer: a different configuration is a
    /// warning, a different LoRA shape (or LoRA against full fine-tuning) an error.
    fn read_trainer_state(&self, sp: &Path) -> Result<TrainerState> {
        let text = std::fs::read_to_string(sp).map_err(io(sp))?;
        let bad = |msg: String| Error::BadFile {
            path: sp.to_path_buf(),
            msg,
        };
        let mut v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match v["format"].as_u64() {
            Some(2) => {}
            Some(1) => {
                let mut config =
                    GrpoConfig::from_format1(v["config"].take()).map_err(|e| bad(e.to_string()))?;
                // the loop's knobs were not in format 1: this trainer's
                let mine = &self.config().optim;
                config.optim.steps = mine.steps;
                config.optim.global_batch_size = mine.global_batch_size;
                config.optim.ppo_epochs = mine.ppo_epochs;
                v["config"] = serde_json::to_value(config).map_err(|e| bad(e.to_string()))?;
                v["format"] = 2.into();
            }
            f => {
                return Err(bad(format!(
                    "format {f:?}: this build reads formats 1 and 2"
                )))
            }
        }
        let state: TrainerState = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if state.config != *self.config() {
            tracing::warn!("resuming with a configuration that differs from the checkpoint's");
        }
        let shape_of = |l: Option<&crate::config::LoraConfig>| {
            l.map(|l| (l.rank, l.alpha(), l.target_modules.clone()))
        };
        if shape_of(state.config.lora().as_ref()) != shape_of(self.lora()) {
            let what = |l: Option<&crate::config::LoraConfig>| match l {
                None => "full fine-tuning".to_string(),
                Some(l) => format!(
                    "LoRA rank {} alpha {} on {}",
                    l.rank,
                    l.alpha(),
                    l.target_modules.join(",")
                ),
            };
            return Err(Error::BadFile {
                path: sp.to_path_buf(),
                msg: format!(
                    "the checkpoint was trained with {}, this trainer runs {}",
                    what(state.config.lora().as_ref()),
                    what(self.lora())
                ),
            });
        }
        Ok(state)
    }

    /// The trained parameters (f32 in the checkpoint: bit-exact) from the tensors `w` of
    /// the file `wp`, named `{prefix}{name}`; `f32_only`: another dtype is an error.
    fn read_master(
        &self,
        w: &HashMap<String, candle_core::Tensor>,
        wp: &Path,
        prefix: &str,
        f32_only: bool,
    ) -> Result<Vec<f32>> {
        let mut master = vec![0f32; self.layout().total()];
        for s in self.layout().specs() {
            let key = format!("{prefix}{}", s.name);
            let t = w.get(&key).ok_or_else(|| Error::BadFile {
                path: wp.to_path_buf(),
                msg: format!("missing tensor {key}"),
            })?;
            if t.dims() != s.shape.as_slice() || (f32_only && t.dtype() != candle_core::DType::F32)
            {
                return Err(Error::BadFile {
                    path: wp.to_path_buf(),
                    msg: format!(
                        "{}: {:?} shape {:?}, expected {}shape {:?}",
                        s.name,
                        t.dtype(),
                        t.dims(),
                        if f32_only { "f32 " } else { "" },
                        s.shape
                    ),
                });
            }
            with_f32(t, |v| master[s.offset..s.offset + s.len].copy_from_slice(v))?;
        }
        Ok(master)
    }

    /// The AdamW moments (`exp_avg.*`, `exp_avg_sq.*`, f32) from the optimizer file `op`.
    fn read_moments(&mut self, o: &HashMap<String, candle_core::Tensor>, op: &Path) -> Result<()> {
        let specs = self.layout().specs().to_vec();
        let opt = self.opt_mut();
        for s in &specs {
            for (key, buf) in [("exp_avg", &mut opt.m), ("exp_avg_sq", &mut opt.v)] {
                let name = format!("{key}.{}", s.name);
                let t = o.get(&name).ok_or_else(|| Error::BadFile {
                    path: op.to_path_buf(),
                    msg: format!("missing tensor {name}"),
                })?;
                if t.dims() != s.shape.as_slice() || t.dtype() != candle_core::DType::F32 {
                    return Err(Error::BadFile {
                        path: op.to_path_buf(),
                        msg: format!(
                            "{name}: {:?} {:?}, expected f32 {:?}",
                            t.dtype(),
                            t.dims(),
                            s.shape
                        ),
                    });
                }
                with_f32(t, |v| buf[s.offset..s.offset + s.len].copy_from_slice(v))?;
            }
        }
        Ok(())
    }
}
