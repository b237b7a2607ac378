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
//! **Activation recomputation** ([`GrpoConfig::recompute`]): the forward runs without a
//! graph on the policy, keeping only each decoder layer's input; backward then goes head
//! first, one chunk of `logprob_chunk_rows` response rows at a time (final norm, logits,
//! log-softmax), then layer by layer in reverse: the saved input becomes a `Var`, the layer
//! is recomputed with a graph and the surrogate `Σ out · grad_out` is differentiated, giving
//! the layer's parameter gradients and the gradient of its input. At most one layer's graph
//! and one chunk × V of logits are alive at a time.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use model::lora::{merged_weight, module_path, module_shape, Adapter, AdapterConfig, LoraPair};
use model::{Config, DecoderInputs, Model, Weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::adamw::{clip_coef, global_norm, AdamW, AdamWParams, FlatLayout};
use crate::advantages::{all_equal, group_advantages};
use crate::config::{GrpoConfig, LoraConfig};
use crate::loss::{kl_token, pg_token, sequence_weights, LossParams};
use crate::{Error, Result};

/// One sampled response and its scalar reward.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// Response token ids, up to and including the first EOS (every id is trained on).
    pub ids: Vec<u32>,
    /// Scalar reward.
    pub reward: f32,
    /// Log-probs of `ids` under the behaviour policy; `None`: the current policy's
    /// (on-policy: ratio 1, the gradient still flows).
    pub old_logprobs: Option<Vec<f32>>,
    /// Log-probs of `ids` under the reference policy; `None`: computed by the trainer.
    pub ref_logprobs: Option<Vec<f32>>,
    /// Per token of `ids`: true for a token the engine wrote (a forced-answer cue,
    /// `engine::force`), which is in the context but has no loss term: masked out as a pad
    /// is (no gradient, not counted in the aggregation). Empty = every token is trained on.
    pub forced: Vec<bool>,
}

/// A prompt with its G sampled responses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Prompt token ids (chat template applied; not trained on).
    pub prompt: Vec<u32>,
    /// The responses.
    pub responses: Vec<Response>,
}

/// What one gradient computation saw (loss terms are the aggregated loss; the rest are
/// weighted means over response tokens, with the loss's aggregation weights).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GradStats {
    /// `Σ w·(ℓ + β·kl)`: the loss that was differentiated.
    pub loss: f64,
    /// `Σ w·ℓ`.
    pub pg_loss: f64,
    /// `Σ w·kl` (not multiplied by β).
    pub kl: f64,
    /// Share of tokens with `−A·ρ < −A·ρ_clipped` (the reference's `pg_clipfrac_higher`).
    pub pg_clipfrac_higher: f64,
    /// Share of tokens where the dual clip binds (`pg_clipfrac_lower`).
    pub pg_clipfrac_lower: f64,
    /// Share of tokens with `A > 0` whose ratio is clipped above (`ρ > 1 + ε_high`).
    pub clipfrac_ratio_upper: f64,
    /// Share of tokens with `A < 0` whose ratio is clipped below (`ρ < 1 − ε_low`).
    pub clipfrac_ratio_lower: f64,
    /// Smallest ratio `ρ = exp(logp − old)` over the response tokens (1 when there are none).
    pub ratio_min: f64,
    /// Largest ratio over the response tokens (1 when there are none).
    pub ratio_max: f64,
    /// Share of the sequences whose advantage is not zero (a step where it is 0 teaches
    /// nothing but the KL).
    pub adv_nonzero_frac: f64,
    /// Mean `old − logp` (`ppo_kl`).
    pub ppo_kl: f64,
    /// Mean entropy of the policy's next-token distribution over response positions.
    pub entropy: f64,
    /// Mean `−logp` (the reference's `entropy_loss` metric).
    pub neg_logp: f64,
    /// Response tokens whose KL hit the clamp.
    pub kl_clamped_tokens: usize,
    /// Response tokens trained on.
    pub response_tokens: usize,
    /// Prompt and response tokens run through forward and backward (pads excluded).
    pub tokens: usize,
    /// Sequences trained on.
    pub sequences: usize,
    /// Groups given.
    pub groups: usize,
    /// Groups dropped because their rewards were all equal.
    pub groups_dropped: usize,
    /// Share of groups whose rewards were all equal.
    pub frac_reward_zero_std: f64,
    /// Mean reward over all given responses.
    pub reward_mean: f64,
    /// Standard deviation (population) of the rewards over all given responses.
    pub reward_std: f64,
    /// Mean response length (tokens) over all given responses.
    pub response_len_mean: f64,
    /// Longest response (tokens).
    pub response_len_max: usize,
}

/// What the optimizer step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Factor applied to the gradient (1 when not clipped).
    pub clip_coef: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// `true` when the norm was not finite and the update was skipped.
    pub skipped: bool,
}

/// One line of `metrics.jsonl`: a training step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Step number (1-based: the number of steps done after this one).
    pub step: u64,
    /// Loss, KL, clip fractions, entropy, rewards, lengths.
    #[serde(flatten)]
    pub grad: GradStats,
    /// Gradient norm, clip factor, learning rate, skipped.
    #[serde(flatten)]
    pub update: UpdateStats,
    /// Wall time of the step (forward, backward, update), seconds.
    pub time_s: f64,
    /// `tokens / time_s`.
    pub tokens_per_s: f64,
}

/// One sequence of the mini-batch, resolved.
struct Seq<'a> {
    /// Group and response index in the groups given.
    gi: usize,
    ri: usize,
    prompt: &'a [u32],
    resp: &'a [u32],
    adv: f32,
    weight: f32,
    old: Option<&'a [f32]>,
    refl: Option<&'a [f32]>,
    /// `Response::forced` (empty = none).
    forced: &'a [bool],
}

/// One micro-batch laid out for the forward pass.
struct Packed {
    b: usize,
    /// Longest prompt, longest response.
    p: usize,
    r: usize,
    /// [B, P+R] ids and mask, [B, R] targets.
    ids: Vec<u32>,
    mask: Vec<u32>,
    targets: Vec<u32>,
}

impl Packed {
    fn tensors(&self, dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let t = self.p + self.r;
        Ok((
            Tensor::from_slice(&self.ids, (self.b, t), dev)?,
            Tensor::from_slice(&self.mask, (self.b, t), dev)?,
            Tensor::from_slice(&self.targets, (self.b, self.r), dev)?,
        ))
    }
}

/// One LoRA-adapted module.
struct LoraModule {
    /// HF module path (`model.layers.0.self_attn.q_proj`).
    path: String,
    /// Decoder layer.
    layer: usize,
    /// Positions of `A` and `B` in [`Trainer::layout`] (and `vars`).
    a: usize,
    b: usize,
}

/// LoRA state: the frozen base and the adapted modules.
struct LoraState {
    cfg: LoraConfig,
    /// `alpha / rank`.
    scale: f64,
    /// The frozen base weights (f32, on the device, no graph), by HF name.
    base: Weights,
    /// The adapted modules, in layout order.
    modules: Vec<LoraModule>,
    /// Merged weights `W + s·B·A` of the adapted modules (one per module), rewritten in place
    /// after every update; the no-graph policy holds views of them.
    merged: Vec<Var>,
}

/// What the no-graph forward of activation recomputation keeps for backward.
struct Saved {
    inp: DecoderInputs,
    /// The input of each decoder layer, [B*T, H].
    layer_inputs: Vec<Tensor>,
    /// The residual stream after the last layer at the rows predicting response tokens,
    /// [B*R, H] (before the final norm).
    resp_rows: Tensor,
    /// The row of each of those in the [B*T] stream.
    row_index: Vec<usize>,
}

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

/// Names of the trainable parameters of `weights` (sorted; `lm_head.weight` left out when
/// the embeddings are tied).
fn param_names(cfg: &Config, weights: &Weights) -> Vec<String> {
    let mut names: Vec<String> = weights
        .keys()
        .filter(|n| !(cfg.tie_word_embeddings && n.as_str() == "lm_head.weight"))
        .cloned()
        .collect();
    names.sort();
    names
}

/// Adds the gradients in `grads` of the `vars` (laid out by `layout`) to the flat `dst`.
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

/// The final norm of residual-stream rows [N,H], divided by the sampling temperature.
fn head_hidden(m: &Model, rows: &Tensor, temperature: f64) -> Result<Tensor> {
    let h = m.final_norm(rows)?;
    Ok(if temperature != 1.0 {
        (h * (1.0 / temperature))?
    } else {
        h
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
        let (layout, vars, train_model, policy, lora) = match &cfg.lora {
            None => Self::full_setup(model_cfg, weights, device)?,
            Some(lc) => Self::lora_setup(lc, cfg.seed, model_cfg, weights, device)?,
        };
        let mut master = vec![0f32; layout.total()];
        for (spec, var) in layout.specs().iter().zip(&vars) {
            with_f32(var.as_tensor(), |s| {
                master[spec.offset..spec.offset + spec.len].copy_from_slice(s)
            })?;
        }
        let reference = if cfg.kl_coef > 0.0 {
            match (reference, &lora) {
                (None, Some(l)) => {
                    Some(Model::from_weights(model_cfg, &l.base, DType::F32, device)?)
                }
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
                    Some(Model::from_weights(model_cfg, &w, DType::F32, device)?)
                }
            }
        } else {
            None
        };
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
        })
    }

    /// Full fine-tuning: one `Var` per parameter, the graph model over them and the
    /// no-graph policy over detached views of the same storage.
    fn full_setup(model_cfg: &Config, weights: &Weights, device: &Device) -> Result<Setup> {
        let names = param_names(model_cfg, weights);
        let varmap = VarMap::new();
        let mut vars = Vec::with_capacity(names.len());
        let mut shapes = Vec::with_capacity(names.len());
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::invalid("var map lock poisoned"))?;
            for name in &names {
                let t = weights[name].to_device(device)?.to_dtype(DType::F32)?;
                // Var::from_tensor copies: the trainer never shares storage with the caller.
                let var = Var::from_tensor(&t)?;
                shapes.push(t.dims().to_vec());
                data.insert(name.clone(), var.clone());
                vars.push(var);
            }
        }
        let train_model = Model::new(
            model_cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, device),
        )?;
        let n_after = varmap.data().lock().map(|d| d.len()).unwrap_or(0);
        if n_after != names.len() {
            return Err(Error::invalid(format!(
                "the model asked for {} parameters that the weights do not hold",
                n_after - names.len()
            )));
        }
        let layout = FlatLayout::new(names.into_iter().zip(shapes));
        let policy = Self::detached_model(model_cfg, &layout, &vars, device)?;
        Ok((layout, vars, Some(train_model), policy, None))
    }

    /// LoRA: `A` (kaiming-uniform, bound `1/sqrt(in)` as PEFT's `kaiming_uniform_(a=√5)`)
    /// and `B` (zeros) per target module as the `Var`s, drawn from stream 1 of a ChaCha8
    /// seeded with `seed` (the trainer's own RNG, stream 0, is untouched); the base weights
    /// copied to f32; the policy over base weights with merged `Var`s for the adapted ones.
    fn lora_setup(
        lc: &LoraConfig,
        seed: u64,
        model_cfg: &Config,
        weights: &Weights,
        device: &Device,
    ) -> Result<Setup> {
        let base: Weights = weights
            .iter()
            .map(|(k, t)| {
                // A copy: the trainer never shares storage with the caller.
                Ok((
                    k.clone(),
                    t.to_device(device)?.to_dtype(DType::F32)?.copy()?,
                ))
            })
            .collect::<Result<_>>()?;
        let r = lc.rank;
        let scale = lc.scale();
        let mut init = ChaCha8Rng::seed_from_u64(seed);
        init.set_stream(1);
        let mut params = Vec::new();
        let mut vars = Vec::new();
        let mut modules = Vec::new();
        let mut merged = Vec::new();
        let mut policy_w = base.clone();
        for layer in 0..model_cfg.num_hidden_layers {
            for m in model::lora::ALL_TARGETS {
                if !lc.target_modules.iter().any(|t| t == m) {
                    continue;
                }
                let (path, (out, inp)) = match (module_path(layer, m), module_shape(model_cfg, m)) {
                    (Some(p), Some(s)) => (p, s),
                    _ => return Err(Error::invalid(format!("unknown LoRA target {m}"))),
                };
                let wname = format!("{path}.weight");
                let w = base.get(&wname).ok_or_else(|| {
                    Error::invalid(format!("LoRA target {wname} is not among the weights"))
                })?;
                if w.dims() != [out, inp] {
                    return Err(Error::invalid(format!(
                        "{wname} has shape {:?}, expected {:?}",
                        w.dims(),
                        [out, inp]
                    )));
                }
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..r * inp)
                    .map(|_| init.random_range(-bound..bound))
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), device)?)?;
                let b = Var::from_tensor(&Tensor::zeros((out, r), DType::F32, device)?)?;
                let mw = Var::from_tensor(&merged_weight(
                    w,
                    &a.as_tensor().detach(),
                    &b.as_tensor().detach(),
                    scale,
                )?)?;
                policy_w.insert(wname, mw.as_tensor().detach());
                modules.push(LoraModule {
                    path: path.clone(),
                    layer,
                    a: vars.len(),
                    b: vars.len() + 1,
                });
                params.push((format!("{path}.lora_A.weight"), vec![r, inp]));
                params.push((format!("{path}.lora_B.weight"), vec![out, r]));
                vars.push(a);
                vars.push(b);
                merged.push(mw);
            }
        }
        let policy = Model::from_weights(model_cfg, &policy_w, DType::F32, device)?;
        let layout = FlatLayout::new(params);
        let state = LoraState {
            cfg: lc.clone(),
            scale,
            base,
            modules,
            merged,
        };
        Ok((layout, vars, None, policy, Some(state)))
    }

    /// With LoRA: a model whose adapted weights are `W + s·B·A` with a graph to the adapter
    /// `Var`s, in decoder layer `layer` only or (`None`) in every layer. Other weights are
    /// the frozen base.
    fn lora_graph_model(&self, layer: Option<usize>) -> Result<Model> {
        let l = self
            .lora
            .as_ref()
            .ok_or_else(|| Error::invalid("not a LoRA trainer"))?;
        let mut w = l.base.clone();
        for m in &l.modules {
            if layer.is_some_and(|x| x != m.layer) {
                continue;
            }
            let name = format!("{}.weight", m.path);
            let merged = merged_weight(
                &l.base[&name],
                self.vars[m.a].as_tensor(),
                self.vars[m.b].as_tensor(),
                l.scale,
            )?;
            w.insert(name, merged);
        }
        Ok(Model::from_weights(
            &self.model_cfg,
            &w,
            DType::F32,
            &self.device,
        )?)
    }

    fn detached_model(
        cfg: &Config,
        layout: &FlatLayout,
        vars: &[Var],
        dev: &Device,
    ) -> Result<Model> {
        let w: Weights = layout
            .specs()
            .iter()
            .zip(vars)
            .map(|(s, v)| (s.name.clone(), v.as_tensor().detach()))
            .collect();
        Ok(Model::from_weights(cfg, &w, DType::F32, dev)?)
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

    /// Turns activation recomputation on or off ([`GrpoConfig::recompute`]): a memory/time
    /// trade that leaves the gradients unchanged up to float summation order.
    pub fn set_recompute(&mut self, on: bool) {
        self.cfg.recompute = on;
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
        if let Some(l) = &self.lora {
            let mut w = l.base.clone();
            for (m, mw) in l.modules.iter().zip(&l.merged) {
                w.insert(format!("{}.weight", m.path), mw.as_tensor().detach());
            }
            return w;
        }
        self.layout
            .specs()
            .iter()
            .zip(&self.vars)
            .map(|(s, v)| (s.name.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// The LoRA configuration, if the trainer trains adapters.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref().map(|l| &l.cfg)
    }

    /// The current LoRA adapter (f32 copies of `A` and `B`), PEFT-named, with
    /// `base_model_name_or_path = base_model`; `None` for full fine-tuning.
    pub fn adapter(&self, base_model: Option<&str>) -> Result<Option<Adapter>> {
        let Some(l) = &self.lora else {
            return Ok(None);
        };
        let mut modules = std::collections::BTreeMap::new();
        for m in &l.modules {
            modules.insert(
                m.path.clone(),
                LoraPair {
                    a: self.vars[m.a].as_tensor().detach().copy()?,
                    b: self.vars[m.b].as_tensor().detach().copy()?,
                },
            );
        }
        Ok(Some(Adapter {
            config: AdapterConfig {
                r: l.cfg.rank,
                lora_alpha: l.cfg.alpha(),
                target_modules: model::lora::ALL_TARGETS
                    .iter()
                    .filter(|t| l.cfg.target_modules.iter().any(|x| x == *t))
                    .map(|t| t.to_string())
                    .collect(),
                base_model_name_or_path: base_model.map(str::to_string),
            },
            modules,
        }))
    }

    /// Learning rate of the next optimizer step (constant after linear warmup).
    pub fn current_lr(&self) -> f64 {
        let w = self.cfg.warmup_steps;
        if w == 0 {
            self.cfg.lr
        } else {
            self.cfg.lr * ((self.opt.step + 1) as f64 / w as f64).min(1.0)
        }
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
        let grad = self.compute_gradients(groups)?;
        let update = self.apply_update()?;
        let time_s = t0.elapsed().as_secs_f64();
        let m = StepMetrics {
            step: self.step + 1,
            tokens_per_s: grad.tokens as f64 / time_s.max(1e-9),
            grad,
            update,
            time_s,
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
            self.cfg.micro_batch_size.max(1),
        )?)
    }

    /// Checks `groups` and resolves them into sequences with advantages and weights.
    fn resolve<'a>(&self, groups: &'a [Group], stats: &mut GradStats) -> Result<Vec<Seq<'a>>> {
        let vocab = self.model_cfg.vocab_size;
        let mut seqs = Vec::new();
        let mut rewards_all = Vec::new();
        let mut lens_all = Vec::new();
        let mut equal = 0usize;
        for (gi, g) in groups.iter().enumerate() {
            if g.prompt.is_empty() {
                return Err(Error::invalid(format!("group {gi}: empty prompt")));
            }
            if let Some(&bad) = g.prompt.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::invalid(format!(
                    "group {gi}: prompt token {bad} out of range (vocab {vocab})"
                )));
            }
            let rewards: Vec<f32> = g.responses.iter().map(|r| r.reward).collect();
            let adv = group_advantages(&rewards, self.cfg.scale_adv_by_std, self.cfg.adv_eps)
                .map_err(|e| Error::invalid(format!("group {gi}: {e}")))?;
            rewards_all.extend_from_slice(&rewards);
            lens_all.extend(g.responses.iter().map(|r| r.ids.len()));
            let eq = all_equal(&rewards);
            equal += eq as usize;
            if eq && self.cfg.drop_equal_reward_groups {
                stats.groups_dropped += 1;
                continue;
            }
            for (ri, (r, a)) in g.responses.iter().zip(adv).enumerate() {
                let at = |what: &str| format!("group {gi} response {ri}: {what}");
                if let Some(&bad) = r.ids.iter().find(|&&t| t as usize >= vocab) {
                    return Err(Error::invalid(at(&format!(
                        "token {bad} out of range (vocab {vocab})"
                    ))));
                }
                for (name, lp) in [
                    ("old_logprobs", &r.old_logprobs),
                    ("ref_logprobs", &r.ref_logprobs),
                ] {
                    if let Some(lp) = lp {
                        if lp.len() != r.ids.len() {
                            return Err(Error::invalid(at(&format!(
                                "{name} has {} values for {} tokens",
                                lp.len(),
                                r.ids.len()
                            ))));
                        }
                    }
                }
                if !r.forced.is_empty() && r.forced.len() != r.ids.len() {
                    return Err(Error::invalid(at(&format!(
                        "forced has {} values for {} tokens",
                        r.forced.len(),
                        r.ids.len()
                    ))));
                }
                let total = g.prompt.len() + r.ids.len();
                if total > self.model_cfg.max_position_embeddings {
                    return Err(Error::invalid(at(&format!(
                        "{total} tokens exceed the context of {}",
                        self.model_cfg.max_position_embeddings
                    ))));
                }
                seqs.push(Seq {
                    gi,
                    ri,
                    prompt: &g.prompt,
                    resp: &r.ids,
                    adv: a,
                    weight: 0.0,
                    old: r.old_logprobs.as_deref(),
                    refl: r.ref_logprobs.as_deref(),
                    forced: &r.forced,
                });
            }
        }
        // Trained tokens per sequence (forced ones are masked out).
        let lens: Vec<usize> = seqs
            .iter()
            .map(|s| s.resp.len() - s.forced.iter().filter(|&&f| f).count())
            .collect();
        let w = sequence_weights(
            &lens,
            self.cfg.loss_agg,
            self.cfg.micro_batch_size,
            self.cfg.loss_norm_len,
        );
        for (s, w) in seqs.iter_mut().zip(w) {
            s.weight = w;
        }
        let n = rewards_all.len().max(1) as f64;
        stats.groups = groups.len();
        stats.frac_reward_zero_std = equal as f64 / groups.len().max(1) as f64;
        stats.reward_mean = rewards_all.iter().map(|&r| r as f64).sum::<f64>() / n;
        stats.reward_std = (rewards_all
            .iter()
            .map(|&r| (r as f64 - stats.reward_mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        stats.response_len_mean = lens_all.iter().sum::<usize>() as f64 / n;
        stats.response_len_max = lens_all.iter().copied().max().unwrap_or(0);
        Ok(seqs)
    }

    /// The micro-batches of `seqs`, in the order [`Trainer::compute_gradients`] runs them
    /// (consecutive runs of `micro_batch_size` sequences; empty responses left out).
    fn micro_batches<'s, 'a>(&self, seqs: &'s [Seq<'a>]) -> Vec<Vec<&'s Seq<'a>>> {
        seqs.chunks(self.cfg.micro_batch_size.max(1))
            .map(|mb| mb.iter().filter(|s| !s.resp.is_empty()).collect::<Vec<_>>())
            .filter(|mb| !mb.is_empty())
            .collect()
    }

    /// Fills the behaviour ("old") log-probs of every response of `groups` (one mini-batch)
    /// with the current policy's, and with `kl_coef > 0` the reference policy's log-probs,
    /// without a graph. Each micro-batch is laid out exactly as
    /// [`Trainer::compute_gradients`] lays it out, so an update on `groups` before any
    /// weight changes sees a ratio of exactly 1. `old = false` fills only the reference.
    pub fn fill_rollout_logprobs(&self, groups: &mut [Group], old: bool) -> Result<()> {
        let beta = self.cfg.kl_coef;
        let need_ref = beta > 0.0;
        if !old && !need_ref {
            return Ok(());
        }
        // (group, response, old log-probs, reference log-probs)
        type Filled = (usize, usize, Option<Vec<f32>>, Option<Vec<f32>>);
        let mut filled: Vec<Filled> = Vec::new();
        {
            let mut dummy = GradStats::default();
            let seqs = self.resolve(groups, &mut dummy)?;
            for mb in self.micro_batches(&seqs) {
                let pk = self.pack(&mb);
                let (ids, mask, targets) = pk.tensors(&self.device)?;
                let olds = if old {
                    let (lp, _) = if self.cfg.recompute {
                        let (_, lp, ent) =
                            self.forward_saving(&ids, &mask, &targets, pk.p, pk.r)?;
                        (lp, ent)
                    } else {
                        self.response_logprobs(&self.policy, &ids, &mask, &targets, pk.p, pk.r)?
                    };
                    Some(lp.detach().to_vec2::<f32>()?)
                } else {
                    None
                };
                let refs = if need_ref {
                    let refm = self
                        .reference
                        .as_ref()
                        .ok_or_else(|| Error::invalid("kl_coef > 0 but no reference model"))?;
                    let (lp, _) =
                        self.response_logprobs(refm, &ids, &mask, &targets, pk.p, pk.r)?;
                    Some(lp.detach().to_vec2::<f32>()?)
                } else {
                    None
                };
                for (i, s) in mb.iter().enumerate() {
                    let n = s.resp.len();
                    filled.push((
                        s.gi,
                        s.ri,
                        olds.as_ref().map(|v| v[i][..n].to_vec()),
                        refs.as_ref().map(|v| v[i][..n].to_vec()),
                    ));
                }
            }
        }
        for (gi, ri, o, r) in filled {
            let resp = &mut groups[gi].responses[ri];
            if o.is_some() {
                resp.old_logprobs = o;
            }
            if r.is_some() && resp.ref_logprobs.is_none() {
                resp.ref_logprobs = r;
            }
        }
        Ok(())
    }

    /// Clears the gradient buffer, then runs forward and backward over `groups` in
    /// micro-batches, accumulating the gradient of the aggregated loss.
    pub fn compute_gradients(&mut self, groups: &[Group]) -> Result<GradStats> {
        self.grads.par_iter_mut().for_each(|g| *g = 0.0);
        let mut stats = GradStats {
            ratio_min: f64::INFINITY,
            ratio_max: f64::NEG_INFINITY,
            ..Default::default()
        };
        let seqs = self.resolve(groups, &mut stats)?;
        let mut wsum = 0f64;
        for mb in self.micro_batches(&seqs) {
            wsum += self.micro_batch(&mb, &mut stats)?;
        }
        stats.sequences = seqs.len();
        stats.adv_nonzero_frac =
            seqs.iter().filter(|s| s.adv != 0.0).count() as f64 / seqs.len().max(1) as f64;
        if !stats.ratio_min.is_finite() || !stats.ratio_max.is_finite() {
            // no response token (or an overflowing ratio: reported as the loss's NaN/inf)
            if stats.response_tokens == 0 {
                stats.ratio_min = 1.0;
                stats.ratio_max = 1.0;
            }
        }
        if wsum > 0.0 {
            for v in [
                &mut stats.pg_clipfrac_higher,
                &mut stats.pg_clipfrac_lower,
                &mut stats.clipfrac_ratio_upper,
                &mut stats.clipfrac_ratio_lower,
                &mut stats.ppo_kl,
                &mut stats.entropy,
                &mut stats.neg_logp,
            ] {
                *v /= wsum;
            }
        }
        Ok(stats)
    }

    /// The padded ids, mask and targets of one micro-batch.
    fn pack(&self, mb: &[&Seq]) -> Packed {
        let b = mb.len();
        let p = mb.iter().map(|s| s.prompt.len()).max().unwrap_or(0);
        let r = mb.iter().map(|s| s.resp.len()).max().unwrap_or(0);
        let t = p + r;
        // [B, P+R] ids and mask: left-padded prompt | right-padded response.
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * r);
        for s in mb {
            let (lp, lr) = (s.prompt.len(), s.resp.len());
            ids.extend(std::iter::repeat_n(self.pad_id, p - lp));
            ids.extend_from_slice(s.prompt);
            ids.extend_from_slice(s.resp);
            ids.extend(std::iter::repeat_n(self.pad_id, r - lr));
            mask.extend(std::iter::repeat_n(0u32, p - lp));
            mask.extend(std::iter::repeat_n(1u32, lp + lr));
            mask.extend(std::iter::repeat_n(0u32, r - lr));
            targets.extend_from_slice(s.resp);
            targets.extend(std::iter::repeat_n(self.pad_id, r - lr));
        }
        Packed {
            b,
            p,
            r,
            ids,
            mask,
            targets,
        }
    }

    /// Forward, loss and backward of one micro-batch; returns `Σ w` over its tokens.
    fn micro_batch(&mut self, mb: &[&Seq], stats: &mut GradStats) -> Result<f64> {
        // 1. [B, P+R] ids and mask: left-padded prompt | right-padded response.
        let pk = self.pack(mb);
        let (b, p, r) = (pk.b, pk.p, pk.r);
        for s in mb {
            stats.tokens += s.prompt.len() + s.resp.len();
            stats.response_tokens += s.resp.len();
        }
        let dev = &self.device;
        let (ids, mask, targets) = pk.tensors(dev)?;
        // 2. Policy log-probs: with a graph, or (recompute) without one, keeping layer inputs.
        let (graph_logp, saved, lp_v, ent_v) = if self.cfg.recompute {
            let (saved, logp, entropy) = self.forward_saving(&ids, &mask, &targets, p, r)?;
            (
                None,
                Some(saved),
                logp.to_vec2::<f32>()?,
                entropy.to_vec2::<f32>()?,
            )
        } else {
            let (logp, entropy) = match &self.train_model {
                Some(m) => self.response_logprobs(m, &ids, &mask, &targets, p, r)?,
                None => {
                    let m = self.lora_graph_model(None)?;
                    self.response_logprobs(&m, &ids, &mask, &targets, p, r)?
                }
            };
            let lp_v = logp.detach().to_vec2::<f32>()?;
            (Some(logp), None, lp_v, entropy.to_vec2::<f32>()?)
        };
        // 3. Reference log-probs without a graph, where not given.
        let beta = self.cfg.kl_coef as f32;
        let need_ref = beta > 0.0 && mb.iter().any(|s| s.refl.is_none());
        let ref_v = if need_ref {
            let refm = self
                .reference
                .as_ref()
                .ok_or_else(|| Error::invalid("kl_coef > 0 but no reference model"))?;
            let (lp, _) = self.response_logprobs(refm, &ids, &mask, &targets, p, r)?;
            Some(lp.detach().to_vec2::<f32>()?)
        } else {
            None
        };
        // 4. Loss terms and d(loss)/d(logp) per token.
        let mut coef = vec![0f32; b * r];
        let mut wsum = 0f64;
        for (i, s) in mb.iter().enumerate() {
            let w = s.weight;
            for j in 0..s.resp.len() {
                if s.forced.get(j) == Some(&true) {
                    continue; // a forced token: masked (coefficient 0, no statistics)
                }
                let lp = lp_v[i][j];
                let old = s.old.map_or(lp, |o| o[j]);
                let pg = pg_token(lp, old, s.adv, &self.loss_params);
                let (kl, dkl) = if beta > 0.0 {
                    let rl = match (s.refl, &ref_v) {
                        (Some(x), _) => x[j],
                        (None, Some(v)) => v[i][j],
                        (None, None) => lp,
                    };
                    let k = kl_token(lp, rl, self.loss_params.kl_clamp);
                    stats.kl_clamped_tokens += k.clamped as usize;
                    (k.kl, k.grad)
                } else {
                    (0.0, 0.0)
                };
                coef[i * r + j] = w * (pg.grad + beta * dkl);
                let wd = w as f64;
                stats.pg_loss += wd * pg.loss as f64;
                stats.kl += wd * kl as f64;
                stats.pg_clipfrac_higher += wd * pg.clip_higher as u8 as f64;
                stats.pg_clipfrac_lower += wd * pg.clip_lower as u8 as f64;
                stats.clipfrac_ratio_upper += wd * (s.adv > 0.0 && pg.clip_higher) as u8 as f64;
                stats.clipfrac_ratio_lower += wd * (s.adv < 0.0 && pg.clip_higher) as u8 as f64;
                stats.ratio_min = stats.ratio_min.min(pg.ratio as f64);
                stats.ratio_max = stats.ratio_max.max(pg.ratio as f64);
                stats.ppo_kl += wd * (old - lp) as f64;
                stats.entropy += wd * ent_v[i][j] as f64;
                stats.neg_logp += wd * (-lp) as f64;
                wsum += wd;
            }
        }
        stats.loss = stats.pg_loss + self.cfg.kl_coef * stats.kl;
        // 5. Backward through the surrogate Σ c·logp, accumulate into the flat gradient.
        match (graph_logp, saved) {
            (Some(logp), _) => {
                let coef = Tensor::from_vec(coef, (b, r), dev)?;
                let surrogate = (logp * coef)?.sum_all()?;
                let grads = surrogate.backward()?;
                accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
            }
            (None, Some(saved)) => self.backward_recompute(saved, &coef, &ids, &targets)?,
            (None, None) => unreachable!("one of the two forward paths ran"),
        }
        Ok(wsum)
    }

    /// The no-graph forward of activation recomputation on the policy (the same values as
    /// the graph model): keeps each decoder layer's input and the final stream's response
    /// rows. Returns them with the response log-probs and entropies [B,R].
    fn forward_saving(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        targets: &Tensor,
        p: usize,
        r: usize,
    ) -> Result<(Saved, Tensor, Tensor)> {
        let m = &self.policy;
        let inp = m.decoder_inputs(ids, Some(mask))?;
        let (b, t) = (inp.b, inp.t);
        let mut x = m.embed(ids)?; // [B*T, H]
        let mut layer_inputs = Vec::with_capacity(m.num_layers());
        for l in 0..m.num_layers() {
            let y = m.layer_forward(l, &x, &inp)?;
            layer_inputs.push(x);
            x = y;
        }
        // Position P-1+j predicts response token j.
        let row_index: Vec<usize> = (0..b)
            .flat_map(|i| (0..r).map(move |j| i * t + p - 1 + j))
            .collect();
        let idx: Vec<u32> = row_index.iter().map(|&i| i as u32).collect();
        let resp_rows = x.index_select(&Tensor::from_vec(idx, b * r, &self.device)?, 0)?;
        let h = head_hidden(m, &resp_rows, self.cfg.temperature)?;
        let hd = h.dim(1)?;
        let (logp, ent) = model::logprobs::token_logprobs(
            m,
            &h.reshape((b, r, hd))?,
            targets,
            self.cfg.logprob_chunk_rows,
        )?;
        let saved = Saved {
            inp,
            layer_inputs,
            resp_rows,
            row_index,
        };
        Ok((saved, logp.detach(), ent))
    }

    /// Backward of activation recomputation: the head and log-softmax per chunk of response
    /// rows, then each decoder layer in reverse, then (full fine-tuning) the embedding.
    /// `coef` [B*R] is `d loss / d logp`.
    fn backward_recompute(
        &mut self,
        saved: Saved,
        coef: &[f32],
        ids: &Tensor,
        targets: &Tensor,
    ) -> Result<()> {
        let dev = self.device.clone();
        let Saved {
            inp,
            mut layer_inputs,
            resp_rows,
            row_index,
        } = saved;
        let (rows, h) = resp_rows.dims2()?;
        let bt = inp.b * inp.t;
        let tg = targets.flatten_all()?;
        let coef_t = Tensor::from_slice(coef, rows, &dev)?;
        // 1. Head: final norm, logits and log-softmax of one chunk of rows at a time.
        let mut gx = vec![0f32; bt * h];
        let chunk = self.cfg.logprob_chunk_rows.max(1);
        let head = self.train_model.as_ref().unwrap_or(&self.policy);
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            if coef[start..start + n].iter().any(|&c| c != 0.0) {
                let xv = Var::from_tensor(&resp_rows.narrow(0, start, n)?)?;
                let hh = head_hidden(head, xv.as_tensor(), self.cfg.temperature)?;
                let (lp, _) = model::logprobs::token_logprobs(
                    head,
                    &hh.unsqueeze(0)?,
                    &tg.narrow(0, start, n)?.unsqueeze(0)?,
                    n,
                )?;
                let sur = (lp.squeeze(0)? * coef_t.narrow(0, start, n)?)?.sum_all()?;
                let grads = sur.backward()?;
                accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
                if let Some(g) = grads.get(xv.as_tensor()) {
                    with_f32(g, |g| {
                        for (k, row) in g.chunks_exact(h).enumerate() {
                            let dst = row_index[start + k] * h;
                            for (d, s) in gx[dst..dst + h].iter_mut().zip(row) {
                                *d += s;
                            }
                        }
                    })?;
                }
            }
            start += n;
        }
        drop(resp_rows);
        // 2. Decoder layers in reverse: recompute with a graph, differentiate Σ out·g.
        let mut g = Tensor::from_vec(gx, (bt, h), &dev)?;
        for l in (0..layer_inputs.len()).rev() {
            let x_in = layer_inputs.pop().expect("one saved input per layer");
            let xv = Var::from_tensor(&x_in)?;
            drop(x_in);
            let owned;
            let lm = match &self.train_model {
                Some(m) => m,
                None => {
                    owned = self.lora_graph_model(Some(l))?;
                    &owned
                }
            };
            let out = lm.layer_forward(l, xv.as_tensor(), &inp)?;
            let grads = (out * &g)?.sum_all()?.backward()?;
            accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
            g = match grads.get(xv.as_tensor()) {
                Some(t) => t.detach(),
                None => Tensor::zeros((bt, h), DType::F32, &dev)?,
            };
        }
        // 3. The embedding (trained in full fine-tuning only).
        if let Some(m) = &self.train_model {
            let grads = (m.embed(ids)? * &g)?.sum_all()?.backward()?;
            accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
        }
        Ok(())
    }

    /// Log-probs (and entropies) of `targets` [B,R] under `m`, response rows only.
    fn response_logprobs(
        &self,
        m: &Model,
        ids: &Tensor,
        mask: &Tensor,
        targets: &Tensor,
        p: usize,
        r: usize,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = m.forward_hidden(ids, Some(mask))?; // [B,P+R,H]
                                                         // Position P-1+j predicts response token j.
        let mut h = hidden.narrow(1, p - 1, r)?; // [B,R,H]
        if self.cfg.temperature != 1.0 {
            h = (h * (1.0 / self.cfg.temperature))?;
        }
        Ok(model::logprobs::token_logprobs(
            m,
            &h,
            targets,
            self.cfg.logprob_chunk_rows,
        )?)
    }

    /// Clips the accumulated gradient and applies one AdamW step to the master weights,
    /// then writes them into the model. A non-finite gradient norm skips the update.
    pub fn apply_update(&mut self) -> Result<UpdateStats> {
        let norm = global_norm(&self.grads);
        let lr = self.current_lr();
        if !norm.is_finite() {
            tracing::warn!(
                grad_norm = norm,
                "gradient norm is not finite: update skipped"
            );
            return Ok(UpdateStats {
                grad_norm: norm,
                clip_coef: 0.0,
                lr,
                skipped: true,
            });
        }
        let coef = clip_coef(norm, self.cfg.max_grad_norm);
        let hp = AdamWParams {
            lr,
            beta1: self.cfg.betas[0],
            beta2: self.cfg.betas[1],
            eps: self.cfg.eps,
            weight_decay: self.cfg.weight_decay,
        };
        self.opt
            .update(&mut self.master, &self.grads, coef as f32, &hp);
        self.write_master()?;
        Ok(UpdateStats {
            grad_norm: norm,
            clip_coef: coef,
            lr,
            skipped: false,
        })
    }

    /// Copies the master weights into the `Var`s (in place: the detached policy sees them).
    pub(crate) fn write_master(&self) -> Result<()> {
        self.layout
            .specs()
            .par_iter()
            .zip(&self.vars)
            .try_for_each(|(s, var)| -> Result<()> {
                let t = Tensor::from_slice(
                    &self.master[s.offset..s.offset + s.len],
                    s.shape.as_slice(),
                    &self.device,
                )?;
                var.set(&t)?;
                Ok(())
            })?;
        if let Some(l) = &self.lora {
            l.modules
                .par_iter()
                .zip(&l.merged)
                .try_for_each(|(m, mw)| -> Result<()> {
                    let w = &l.base[&format!("{}.weight", m.path)];
                    let t = merged_weight(
                        w,
                        &self.vars[m.a].as_tensor().detach(),
                        &self.vars[m.b].as_tensor().detach(),
                        l.scale,
                    )?;
                    mw.set(&t)?;
                    Ok(())
                })?;
        }
        Ok(())
    }

    /// Replaces the master weights (flat, layout order) and writes them into the model.
    pub(crate) fn set_master(&mut self, master: Vec<f32>) -> Result<()> {
        if master.len() != self.master.len() {
            return Err(Error::invalid("master weights of the wrong size"));
        }
        self.master = master;
        self.write_master()
    }

    pub(crate) fn opt_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    pub(crate) fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    pub(crate) fn set_rng(&mut self, rng: ChaCha8Rng) {
        self.rng = rng;
    }
}
