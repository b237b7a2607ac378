//! The optimizer step: clipping, AdamW on the f32 master weights, and writing them back into
//! the model.

use candle_core::Tensor;
use model::lora::merged_weight;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Trainer, UpdateStats};
use crate::adamw::{clip_coef, global_norm, AdamW, AdamWParams};
use crate::{Error, Result};

impl Trainer {
    /// Learning rate of the next optimizer step (constant after linear warmup).
    pub fn current_lr(&self) -> f64 {
        let w = self.cfg.warmup_steps;
        if w == 0 {
            self.cfg.optim.lr
        } else {
            self.cfg.optim.lr * ((self.opt.step + 1) as f64 / w as f64).min(1.0)
        }
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
        let coef = clip_coef(norm, self.cfg.optim.max_grad_norm);
        let hp = AdamWParams {
            lr,
            beta1: self.cfg.betas[0],
            beta2: self.cfg.betas[1],
            eps: self.cfg.eps,
            weight_decay: self.cfg.optim.weight_decay,
        };
        self.opt
            .update(&mut self.master, &self.grads, coef as f32, &hp);
        self.write_master()?;
        self.refresh_half()?;
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
        self.write_master()?;
        self.refresh_half()
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
