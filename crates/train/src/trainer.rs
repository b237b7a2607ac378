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

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use model::{Config, Model, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::adamw::{clip_coef, global_norm, AdamW, AdamWParams, FlatLayout};
use crate::advantages::{all_equal, group_advantages};
use crate::config::GrpoConfig;
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
    prompt: &'a [u32],
    resp: &'a [u32],
    adv: f32,
    weight: f32,
    old: Option<&'a [f32]>,
    refl: Option<&'a [f32]>,
}

/// The GRPO trainer: policy `Var`s, f32 master weights, gradients, AdamW state and RNG.
pub struct Trainer {
    cfg: GrpoConfig,
    model_cfg: Config,
    device: Device,
    layout: FlatLayout,
    /// One per layout entry.
    vars: Vec<Var>,
    train_model: Model,
    policy: Model,
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

impl Trainer {
    /// A trainer for the model `model_cfg` with initial `weights` (any dtype; trained in
    /// f32). `reference`: the frozen reference policy's weights; `None` uses a copy of the
    /// initial weights. With `kl_coef = 0` no reference model is built.
    pub fn new(
        cfg: GrpoConfig,
        model_cfg: &Config,
        weights: &Weights,
        reference: Option<&Weights>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
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
        let mut master = vec![0f32; layout.total()];
        for (spec, var) in layout.specs().iter().zip(&vars) {
            with_f32(var.as_tensor(), |s| {
                master[spec.offset..spec.offset + spec.len].copy_from_slice(s)
            })?;
        }
        let policy = Self::detached_model(model_cfg, &layout, &vars, device)?;
        let reference = if cfg.kl_coef > 0.0 {
            let w = reference.unwrap_or(weights);
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
            reference,
            master,
            grads: vec![0f32; n],
            opt: AdamW::new(n),
            pad_id,
            step: 0,
        })
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

    /// The current weights by HF name, as detached views of the live parameters (they
    /// change with the next step; copy them to keep a snapshot).
    pub fn weights(&self) -> Weights {
        self.layout
            .specs()
            .iter()
            .zip(&self.vars)
            .map(|(s, v)| (s.name.clone(), v.as_tensor().detach()))
            .collect()
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

    /// One full step: gradients on `groups`, clipping, AdamW.
    pub fn step(&mut self, groups: &[Group]) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let grad = self.compute_gradients(groups)?;
        let update = self.apply_update()?;
        self.step += 1;
        let time_s = t0.elapsed().as_secs_f64();
        let m = StepMetrics {
            step: self.step,
            tokens_per_s: grad.tokens as f64 / time_s.max(1e-9),
            grad,
            update,
            time_s,
        };
        tracing::info!(
            step = m.step,
            loss = m.grad.loss,
            kl = m.grad.kl,
            reward_mean = m.grad.reward_mean,
            grad_norm = m.update.grad_norm,
            tokens_per_s = m.tokens_per_s,
            "grpo step"
        );
        Ok(m)
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
                let total = g.prompt.len() + r.ids.len();
                if total > self.model_cfg.max_position_embeddings {
                    return Err(Error::invalid(at(&format!(
                        "{total} tokens exceed the context of {}",
                        self.model_cfg.max_position_embeddings
                    ))));
                }
                seqs.push(Seq {
                    prompt: &g.prompt,
                    resp: &r.ids,
                    adv: a,
                    weight: 0.0,
                    old: r.old_logprobs.as_deref(),
                    refl: r.ref_logprobs.as_deref(),
                });
            }
        }
        let lens: Vec<usize> = seqs.iter().map(|s| s.resp.len()).collect();
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

    /// Clears the gradient buffer, then runs forward and backward over `groups` in
    /// micro-batches, accumulating the gradient of the aggregated loss.
    pub fn compute_gradients(&mut self, groups: &[Group]) -> Result<GradStats> {
        self.grads.par_iter_mut().for_each(|g| *g = 0.0);
        let mut stats = GradStats::default();
        let seqs = self.resolve(groups, &mut stats)?;
        let mut wsum = 0f64;
        let mbs = self.cfg.micro_batch_size;
        for mb in seqs.chunks(mbs) {
            let mb: Vec<&Seq> = mb.iter().filter(|s| !s.resp.is_empty()).collect();
            if mb.is_empty() {
                continue;
            }
            wsum += self.micro_batch(&mb, &mut stats)?;
        }
        stats.sequences = seqs.len();
        if wsum > 0.0 {
            for v in [
                &mut stats.pg_clipfrac_higher,
                &mut stats.pg_clipfrac_lower,
                &mut stats.ppo_kl,
                &mut stats.entropy,
                &mut stats.neg_logp,
            ] {
                *v /= wsum;
            }
        }
        Ok(stats)
    }

    /// Forward, loss and backward of one micro-batch; returns `Σ w` over its tokens.
    fn micro_batch(&mut self, mb: &[&Seq], stats: &mut GradStats) -> Result<f64> {
        let b = mb.len();
        let p = mb.iter().map(|s| s.prompt.len()).max().unwrap_or(0);
        let r = mb.iter().map(|s| s.resp.len()).max().unwrap_or(0);
        let t = p + r;
        // 1. [B, P+R] ids and mask: left-padded prompt | right-padded response.
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
            stats.tokens += lp + lr;
            stats.response_tokens += lr;
        }
        let dev = &self.device;
        let ids = Tensor::from_vec(ids, (b, t), dev)?;
        let mask = Tensor::from_vec(mask, (b, t), dev)?;
        let targets = Tensor::from_vec(targets, (b, r), dev)?;
        // 2. Policy log-probs with a graph: hidden [B,T,H] -> rows predicting the response.
        let logp = self.response_logprobs(&self.train_model, &ids, &mask, &targets, p, r)?;
        let (logp, entropy) = logp;
        let lp_v = logp.detach().to_vec2::<f32>()?;
        let ent_v = entropy.to_vec2::<f32>()?;
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
                stats.ppo_kl += wd * (old - lp) as f64;
                stats.entropy += wd * ent_v[i][j] as f64;
                stats.neg_logp += wd * (-lp) as f64;
                wsum += wd;
            }
        }
        stats.loss = stats.pg_loss + self.cfg.kl_coef * stats.kl;
        // 5. Backward through the surrogate Σ c·logp, accumulate into the flat gradient.
        let coef = Tensor::from_vec(coef, (b, r), dev)?;
        let surrogate = (logp * coef)?.sum_all()?;
        let grads = surrogate.backward()?;
        let mut jobs: Vec<(&mut [f32], Tensor)> = Vec::new();
        let mut rest: &mut [f32] = &mut self.grads;
        for (spec, var) in self.layout.specs().iter().zip(&self.vars) {
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
        })?;
        Ok(wsum)
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
            })
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
