//! Micro-batching and loss assembly: groups resolved into sequences with advantages and
//! weights, packed into padded micro-batches, forward, per-token loss terms, backward.

use candle_core::{Device, Tensor};
use model::Model;
use rayon::prelude::*;

use super::graph::Part;
use super::shared::{self, Rows};
use super::{accumulate, GradStats, Group, Trainer};
use crate::advantages::{all_equal, group_advantages};
use crate::loss::{kl_token, pg_token, sequence_weights};
use crate::{Error, Result};

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

impl Trainer {
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
            self.cfg.optim.micro_batch_size,
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
    /// With shared prompts: one prompt's sequences per micro-batch ([`shared`]).
    fn micro_batches<'s, 'a>(&self, seqs: &'s [Seq<'a>]) -> Vec<Vec<&'s Seq<'a>>> {
        if self.cfg.optim.shared_prompts {
            let nonempty: Vec<&Seq> = seqs.iter().filter(|s| !s.resp.is_empty()).collect();
            return shared::shared_micro_batches(
                &nonempty,
                |s| s.prompt,
                |s| s.resp.len(),
                self.cfg.optim.micro_batch_size,
            );
        }
        seqs.chunks(self.cfg.optim.micro_batch_size.max(1))
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
        let beta = self.cfg.optim.kl_coef;
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
                let (rows, targets, _, r) = self.rows_of(&mb)?;
                let olds = if old {
                    let (lp, _) = if self.cfg.optim.recompute {
                        let (_, lp, ent) = self.forward_saving(&rows, &targets, r)?;
                        (lp, ent)
                    } else {
                        self.logprobs_in(&self.policy, &rows, &targets, r)?
                    };
                    Some(lp.detach().to_vec2::<f32>()?)
                } else {
                    None
                };
                let refs = self.ref_logprobs(need_ref, &rows, &targets, r)?;
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
        // 1. [B, P+R] ids and mask: left-padded prompt | right-padded response; or one
        //    prompt and its responses as one stream (shared prompts).
        let (rows, targets, b, r) = self.rows_of(mb)?;
        for s in mb {
            stats.tokens += s.prompt.len() + s.resp.len();
            stats.response_tokens += s.resp.len();
        }
        let dev = &self.device;
        // 2. Policy log-probs: with a graph, or (recompute) without one, keeping layer inputs.
        let (graph_logp, saved, lp_v, ent_v) = if self.cfg.optim.recompute {
            let (saved, logp, entropy) = self.forward_saving(&rows, &targets, r)?;
            (
                None,
                Some(saved),
                logp.to_vec2::<f32>()?,
                entropy.to_vec2::<f32>()?,
            )
        } else {
            let m = self.graph_model(Part::All)?;
            let (logp, entropy) = self.logprobs_in(&m, &rows, &targets, r)?;
            let lp_v = logp.detach().to_vec2::<f32>()?;
            (Some(logp), None, lp_v, entropy.to_vec2::<f32>()?)
        };
        // 3. Reference log-probs without a graph, where not given.
        let beta = self.cfg.optim.kl_coef as f32;
        let need_ref = beta > 0.0 && mb.iter().any(|s| s.refl.is_none());
        let ref_v = self.ref_logprobs(need_ref, &rows, &targets, r)?;
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
        stats.loss = stats.pg_loss + self.cfg.optim.kl_coef * stats.kl;
        // 5. Backward through the surrogate Σ c·logp, accumulate into the flat gradient.
        match (graph_logp, saved) {
            (Some(logp), _) => {
                let coef = Tensor::from_vec(coef, (b, r), dev)?;
                let surrogate = (logp * coef)?.sum_all()?;
                let grads = self.backward(&surrogate)?;
                self.note_device_mem();
                accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
            }
            (None, Some(saved)) => self.backward_recompute(saved, &coef, &targets)?,
            (None, None) => unreachable!("one of the two forward paths ran"),
        }
        Ok(wsum)
    }

    /// One micro-batch's rows (padded, or shared with [`crate::OptimKnobs::shared_prompts`],
    /// whose micro-batches hold one prompt), its targets [B,R], B and R.
    fn rows_of(&self, mb: &[&Seq]) -> Result<(Rows, Tensor, usize, usize)> {
        if self.cfg.optim.shared_prompts {
            let resps: Vec<&[u32]> = mb.iter().map(|s| s.resp).collect();
            let sp = shared::SharedPack::new(mb[0].prompt, &resps, self.pad_id);
            let (rows, targets) = sp.rows(&self.policy)?;
            return Ok((rows, targets, sp.n, sp.r));
        }
        let pk = self.pack(mb);
        let (ids, mask, targets) = pk.tensors(&self.device)?;
        Ok((Rows::Padded { ids, mask, p: pk.p }, targets, pk.b, pk.r))
    }

    /// The reference model's log-probs of `targets` [B,R] without a graph, when `need`.
    fn ref_logprobs(
        &self,
        need: bool,
        rows: &Rows,
        targets: &Tensor,
        r: usize,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        if !need {
            return Ok(None);
        }
        let refm = self
            .reference
            .as_ref()
            .ok_or_else(|| Error::invalid("kl_coef > 0 but no reference model"))?;
        let (lp, _) = self.logprobs_in(refm, rows, targets, r)?;
        Ok(Some(lp.detach().to_vec2::<f32>()?))
    }

    /// Log-probs (and entropies) of `targets` [B,R] under `m` in either layout.
    fn logprobs_in(
        &self,
        m: &Model,
        rows: &Rows,
        targets: &Tensor,
        r: usize,
    ) -> Result<(Tensor, Tensor)> {
        match rows {
            Rows::Padded { ids, mask, p } => self.response_logprobs(m, ids, mask, targets, *p, r),
            Rows::Shared(inp) => shared::shared_logprobs(
                m,
                inp,
                targets,
                self.cfg.temperature,
                self.cfg.logprob_chunk_rows,
            ),
        }
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
}
