//! [`Trainer`]: one GRPO optimizer step on already-sampled groups.
//!
//! The policy is a [`Model`] built from a `candle_nn::VarMap` holding one f32 [`Var`] per
//! parameter, so its forward pass records a graph. A second [`Model`] over *detached* views of
//! the same storage ([`Trainer::policy`]) serves rollouts and no-graph scoring; it sees every
//! update because `Var::set` writes in place. The frozen reference policy is a third model over
//! its own tensors (no graph).
//!
//! A step:
//! 1. advantages per group ([`crate::advantages`]), optional drop of equal-reward groups;
//! 2. per micro-batch of `micro_batch_size` sequences: one padded forward
//!    (`[left-padded prompt | right-padded response]`), per-token log-probs of the response
//!    tokens in vocabulary chunks, the reference log-probs without a graph, the loss terms
//!    and their derivatives per token ([`crate::loss`]), and one backward through the
//!    surrogate `Σ c_t·logp_t`, accumulated into a flat f32 gradient buffer;
//! 3. global-norm clipping and the fused AdamW ([`crate::adamw`]) on the f32 master weights,
//!    written back into the `Var`s.
//!
//! **LoRA** ([`GrpoConfig::lora`]): the `Var`s are the adapters `A` [r, in] and `B` [out, r]
//! of each target module; the base weights `W` are frozen f32 constants. The graph forward
//! runs a model whose adapted weights are `W + s·B·A` built from the `Var`s
//! ([`model::lora::merged_weight`], `s = alpha / r`), so its numerics are exactly those of
//! the merged model. The no-graph policy holds merged weights of its own, recomputed in place
//! after every update; the reference policy is the base model itself (no copy).
//!
//! **Activation recomputation** ([`crate::OptimKnobs::recompute`]): the forward runs without a
//! graph on the policy, keeping only each decoder layer's input; backward then goes head
//! first, one chunk of `logprob_chunk_rows` response rows at a time (final norm, logits,
//! log-softmax), then layer by layer in reverse: the saved input becomes a `Var`, the layer
//! is recomputed with a graph and the surrogate `Σ out · grad_out` is differentiated, giving
//! the layer's parameter gradients and the gradient of its input. At most one layer's graph
//! and one chunk × V of logits are alive at a time.
//!
//! Files: [`types`] the public inputs and outputs, [`full`] and [`lora`] the two kinds of
//! trained parameters, [`graph`] the graph models (and bf16 compute), [`batch`] the
//! micro-batching and loss assembly, [`shared`] shared prompts (one prompt's forward per
//! micro-batch, [`crate::OptimKnobs::shared_prompts`]), [`recompute`] activation recomputation,
//! [`update`] clipping and AdamW.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use model::ops::GradSink;
use model::{Config, Model, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::adamw::{AdamW, FlatLayout};
use crate::config::{GrpoConfig, LoraConfig};
use crate::loss::LossParams;
use crate::{Error, Result};

mod batch;
mod full;
mod graph;
mod lora;
mod recompute;
mod shared;
mod types;
mod update;

use lora::LoraState;
pub use types::{GradStats, Group, Response, StepMetrics, UpdateStats};

/// What [`Trainer::new`]'s setup returns: the layout of the trained `Var`s, the `Var`s, the
/// graph model (when it is built up front), the no-graph policy, and the LoRA state.
type Setup = (
    FlatLayout,
    Vec<Var>,
    Option<Model>,
    Model,
    Option<LoraState>,
);

/// The GRPO trainer: policy `Var`s, f32 master weights, gradients, AdamW state and RNG.
pub struct Trainer {
    cfg: GrpoConfig,
    model_cfg: Config,
    device: Device,
    layout: FlatLayout,
    /// One per layout entry.
    vars: Vec<Var>,
    /// The graph model of full fine-tuning (`None` with LoRA: built per micro-batch).
    train_model: Option<Model>,
    policy: Model,
    lora: Option<LoraState>,
    reference: Option<Model>,
    master: Vec<f32>,
    grads: Vec<f32>,
    opt: AdamW,
    rng: ChaCha8Rng,
    loss_params: LossParams,
    pad_id: u32,
    /// Training steps taken (skipped updates included).
    step: u64,
    /// Dtype of the weight products ([`GrpoConfig::compute_dtype`]).
    compute: DType,
    /// The memory peak of the current update ([`model::device::mem_report`] readings).
    mem: model::device::MemReport,
    /// bf16 compute: the current weights by HF name as the policy holds them (matrices cast
    /// to bf16, vectors f32, no graph), rebuilt after every update. `None` in f32.
    half: Option<Weights>,
    /// Full fine-tuning in f32: the decoder layers' matrices add their gradients straight
    /// into `grads` during backward ([`model::ops::GradSink`], lent `grads` by
    /// [`Trainer::backward`]); `None` otherwise.
    sink: Option<GradSink>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("step", &self.step)
            .field("params", &self.layout.total())
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Reads a contiguous f32 CPU tensor without copying (copies otherwise) and calls `f`.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.to_dtype(DType::F32)?.contiguous()?;
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            let s = cpu.as_slice::<f32>()?;
            return Ok(f(&s[a..b]));
        }
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

/// Adds the gradients in `grads` of the `vars` (laid out by `layout`) to the flat `dst`.
/// Weights whose gradient went into the sink ([`Trainer::backward`]) have none in `grads`.
fn accumulate(layout: &FlatLayout, vars: &[Var], dst: &mut [f32], grads: &GradStore) -> Result<()> {
    let mut jobs: Vec<(&mut [f32], Tensor)> = Vec::new();
    let mut rest: &mut [f32] = dst;
    for (spec, var) in layout.specs().iter().zip(vars) {
        let (head, tail) = rest.split_at_mut(spec.len);
        rest = tail;
        if let Some(g) = grads.get(var.as_tensor()) {
            jobs.push((head, g.clone()));
        }
    }
    jobs.into_par_iter().try_for_each(|(dst, g)| {
        with_f32(&g, |src| {
            for (d, s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        })
    })
}

impl Trainer {
    /// A trainer for the model `model_cfg` with initial `weights` (any dtype; trained in
    /// f32). `reference`: the frozen reference policy's weights; `None` uses a copy of the
    /// initial weights (with LoRA, the base weights themselves). With `kl_coef = 0` no
    /// reference model is built.
    pub fn new(
        cfg: GrpoConfig,
        model_cfg: &Config,
        weights: &Weights,
        reference: Option<&Weights>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let compute = cfg.compute_dtype.dtype();
        let (layout, vars, mut train_model, mut policy, lora) = match &cfg.lora() {
            None => Self::full_setup(model_cfg, weights, device)?,
            Some(lc) => Self::lora_setup(lc, cfg.seed, model_cfg, weights, device)?,
        };
        // bf16 compute: graph models are cast per forward; the policy holds bf16 copies.
        let mut half = None;
        if compute != DType::F32 {
            train_model = None;
            let (h, p) = Self::half_policy(
                model_cfg,
                &Self::live_weights(&layout, &vars, &lora),
                compute,
                device,
            )?;
            half = Some(h);
            policy = p;
        }
        // f32 full fine-tuning: the decoder layers' matrices use the gradient sink (each is
        // used by one product per graph, so `dst += dW` equals candle's `dst += 0 + dW`), and
        // the embedding and LM head as summed weights (lookup and head chunks summed apart
        // in candle's order, then added once).
        let sink = match (train_model.as_mut(), &lora) {
            (Some(m), None) => {
                let held = |summed: bool| {
                    layout
                        .specs()
                        .iter()
                        .zip(&vars)
                        .filter(move |(s, v)| {
                            let head = matches!(
                                s.name.as_str(),
                                "model.embed_tokens.weight" | "lm_head.weight"
                            );
                            if summed {
                                head
                            } else {
                                s.name.starts_with("model.layers.") && v.rank() == 2
                            }
                        })
                        .map(|(s, v)| (v.as_tensor(), s.offset))
                };
                let sink = GradSink::with_summed(held(false), held(true));
                m.set_grad_sink(Some(sink.clone()));
                Some(sink)
            }
            _ => None,
        };
        // Operand precision of the fused products (f32 models on the CPU).
        let mp = cfg.optim.matmul_precision;
        policy.set_matmul_precision(mp);
        if let Some(m) = train_model.as_mut() {
            m.set_matmul_precision(mp);
        }
        let mut master = vec![0f32; layout.total()];
        for (spec, var) in layout.specs().iter().zip(&vars) {
            with_f32(var.as_tensor(), |s| {
                master[spec.offset..spec.offset + spec.len].copy_from_slice(s)
            })?;
        }
        let reference = if cfg.optim.kl_coef > 0.0 {
            match (reference, &lora) {
                (None, Some(l)) => Some(Model::from_weights(model_cfg, &l.base, compute, device)?),
                (r, _) => {
                    let w = r.unwrap_or(weights);
                    let w: Weights = w
                        .iter()
                        .map(|(k, t)| {
                            Ok((
                                k.clone(),
                                t.to_device(device)?.to_dtype(DType::F32)?.detach(),
                            ))
                        })
                        .collect::<Result<_>>()?;
                    Some(Model::from_weights(model_cfg, &w, compute, device)?)
                }
            }
        } else {
            None
        }
        .map(|mut r: Model| {
            r.set_matmul_precision(mp);
            r
        });
        let n = layout.total();
        let pad_id = model_cfg
            .pad_token_id
            .filter(|&p| (p as usize) < model_cfg.vocab_size)
            .unwrap_or(0);
        Ok(Self {
            loss_params: LossParams::new(&cfg),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            model_cfg: model_cfg.clone(),
            device: device.clone(),
            layout,
            vars,
            train_model,
            policy,
            lora,
            reference,
            master,
            grads: vec![0f32; n],
            opt: AdamW::new(n),
            pad_id,
            step: 0,
            compute,
            half,
            mem: Default::default(),
            sink,
        })
    }

    /// `t.backward()` with the gradient buffer lent to the weight-gradient sink meanwhile:
    /// the sunk weights' gradients are in `self.grads` afterwards, not in the store.
    fn backward(&mut self, t: &Tensor) -> Result<GradStore> {
        let Some(sink) = self.sink.clone() else {
            return Ok(t.backward()?);
        };
        sink.lend(std::mem::take(&mut self.grads));
        let r = t.backward();
        self.grads = sink.take();
        Ok(r?)
    }

    /// Turns the weight-gradient sink of f32 full fine-tuning on (the default) or off: with
    /// it, the backward of the decoder layers' weight products adds their gradients straight
    /// into the flat gradient buffer ([`model::ops::GradSink`]); without it, candle's
    /// gradient store holds them and they are added afterwards (more memory, more passes).
    /// The gradients are the same bit for bit; this exists so tests can prove it.
    pub fn set_weight_grad_sink(&mut self, on: bool) {
        if let Some(m) = self.train_model.as_mut() {
            m.set_grad_sink(if on { self.sink.clone() } else { None });
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GrpoConfig {
        &self.cfg
    }

    /// The model configuration.
    pub fn model_config(&self) -> &Config {
        &self.model_cfg
    }

    /// The current policy without a graph (shares the trained weights; use it for rollouts).
    pub fn policy(&self) -> &Model {
        &self.policy
    }

    /// The frozen reference policy, if the KL term is on.
    pub fn reference(&self) -> Option<&Model> {
        self.reference.as_ref()
    }

    /// Training steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The trainer's RNG (for the caller's sampling and data order; saved in checkpoints).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// The trainer's RNG, read-only.
    pub fn rng_ref(&self) -> &ChaCha8Rng {
        &self.rng
    }

    /// The no-graph policy and the RNG together (a rollout needs both).
    pub fn policy_and_rng(&mut self) -> (&Model, &mut ChaCha8Rng) {
        (&self.policy, &mut self.rng)
    }

    /// Turns activation recomputation on or off ([`crate::OptimKnobs::recompute`]): a memory/time
    /// trade that leaves the gradients unchanged up to float summation order.
    pub fn set_recompute(&mut self, on: bool) {
        self.cfg.optim.recompute = on;
    }

    /// Turns shared prompts ([`crate::OptimKnobs::shared_prompts`]) on or off.
    pub fn set_shared_prompts(&mut self, on: bool) {
        self.cfg.optim.shared_prompts = on;
    }

    /// The token id used for padding (the model's pad id, else 0). Padding never changes
    /// the result; this exists so tests can prove it.
    pub fn set_pad_id(&mut self, id: u32) -> Result<()> {
        if id as usize >= self.model_cfg.vocab_size {
            return Err(Error::invalid(format!("pad id {id} out of range")));
        }
        self.pad_id = id;
        Ok(())
    }

    /// The flat parameter layout.
    pub fn layout(&self) -> &FlatLayout {
        &self.layout
    }

    /// The f32 master weights (flat, in [`Trainer::layout`] order).
    pub fn master(&self) -> &[f32] {
        &self.master
    }

    /// The accumulated gradient of parameter `name` (before clipping).
    pub fn grad(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .get(name)
            .map(|s| &self.grads[s.offset..s.offset + s.len])
    }

    /// The optimizer state.
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }

    /// The current model weights by HF name (with LoRA: the base with the merged
    /// `W + s·B·A` of the adapted modules), as detached views of the live parameters (they
    /// change with the next step; copy them to keep a snapshot).
    pub fn weights(&self) -> Weights {
        Self::live_weights(&self.layout, &self.vars, &self.lora)
    }

    /// The dtype of the weight products ([`GrpoConfig::compute_dtype`]); checkpoints save
    /// the model in it.
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// Whether checkpoints keep the f32 master weights in the optimizer file (full
    /// fine-tuning with a model saved in a narrower dtype).
    pub(crate) fn masters_in_optimizer(&self) -> bool {
        self.lora.is_none() && self.compute != DType::F32
    }

    /// [`Trainer::weights`] in the model's dtype ([`Trainer::compute_dtype`]), what a
    /// checkpoint's `model/` holds (every tensor cast, as transformers saves a bf16 model).
    pub fn model_weights(&self) -> Result<Weights> {
        self.weights()
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(self.compute)?)))
            .collect()
    }

    /// The LoRA configuration, if the trainer trains adapters.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref().map(|l| &l.cfg)
    }

    /// One full step on one batch: gradients on `groups`, clipping, AdamW, and the step
    /// counter advanced (a rollout spent in a single update).
    pub fn step(&mut self, groups: &[Group]) -> Result<StepMetrics> {
        let mut m = self.update(groups)?;
        self.end_step();
        m.step = self.step;
        Ok(m)
    }

    /// One optimizer update on `groups` (a mini-batch of a rollout): gradients, clipping,
    /// AdamW. The step counter is not advanced ([`Trainer::end_step`] does it once the
    /// rollout is spent); the returned `step` is the step the update belongs to (1-based).
    pub fn update(&mut self, groups: &[Group]) -> Result<StepMetrics> {
        let t0 = Instant::now();
        self.mem = Default::default();
        let grad = self.compute_gradients(groups)?;
        let update = self.apply_update()?;
        let time_s = t0.elapsed().as_secs_f64();
        self.note_mem();
        let mem = self.mem;
        let m = StepMetrics {
            step: self.step + 1,
            tokens_per_s: grad.tokens as f64 / time_s.max(1e-9),
            grad,
            update,
            time_s,
            mem_rss_bytes: mem.rss_bytes,
            mem_rss_peak_bytes: mem.rss_peak_bytes,
            mem_device_bytes: mem.device_used_bytes,
            mem_device_total_bytes: mem.device_total_bytes,
        };
        tracing::debug!(
            step = m.step,
            loss = m.grad.loss,
            kl = m.grad.kl,
            ppo_kl = m.grad.ppo_kl,
            reward_mean = m.grad.reward_mean,
            grad_norm = m.update.grad_norm,
            tokens_per_s = m.tokens_per_s,
            "grpo update"
        );
        Ok(m)
    }

    /// Takes a memory reading into the current update's peak (on the CPU the resident set is
    /// read once, after the update: its peak is the kernel's `VmHWM`).
    fn note_mem(&mut self) {
        self.mem = self.mem.max(model::device::mem_report(&self.device));
    }

    /// Reads device memory (CUDA only) at a likely peak of the update.
    fn note_device_mem(&mut self) {
        if self.device.is_cuda() {
            self.note_mem();
        }
    }

    /// Marks the current step (one rollout and its updates) done.
    pub fn end_step(&mut self) {
        self.step += 1;
    }

    /// Per-token log-probs of `responses` after `prompt`s under the current policy, without
    /// a graph (what to pass as `old_logprobs` before several updates on one rollout).
    pub fn policy_logprobs(&self, items: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>> {
        Ok(model::logprobs::score(
            &self.policy,
            items,
            self.cfg.optim.micro_batch_size.max(1),
        )?)
    }
}
