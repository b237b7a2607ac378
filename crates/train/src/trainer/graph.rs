//! The models a forward with a graph runs on, and bf16 compute (the policy's cast copies).

use candle_core::{DType, Device, Tensor, Var};
use model::lora::merged_weight;
use model::{Config, Model, Weights};

use super::{LoraState, Trainer};
use crate::adamw::FlatLayout;
use crate::{Error, Result};

/// Which weights of a graph model carry a graph to the trained `Var`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Every parameter.
    All,
    /// Decoder layer `l` only.
    Layer(usize),
    /// The embedding, the final norm and the LM head only.
    Outer,
}

impl Part {
    /// Whether the parameter `name` (HF name) belongs to this part.
    fn holds(self, name: &str) -> bool {
        let layer = name
            .strip_prefix("model.layers.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        match self {
            Part::All => true,
            Part::Layer(l) => layer == Some(l),
            Part::Outer => layer.is_none(),
        }
    }
}

/// `t` as the compute dtype `dt` holds it: matrices cast (a differentiable cast when `t` has
/// a graph), vectors (norm weights, biases) left f32.
fn cast_param(t: &Tensor, dt: DType) -> Result<Tensor> {
    Ok(if t.rank() >= 2 {
        t.to_dtype(dt)?
    } else {
        t.clone()
    })
}

impl Trainer {
    /// The live weights by HF name (detached views; with LoRA the base and the merged
    /// adapted modules).
    pub(super) fn live_weights(
        layout: &FlatLayout,
        vars: &[Var],
        lora: &Option<LoraState>,
    ) -> Weights {
        if let Some(l) = lora {
            let mut w = l.base.clone();
            for (m, mw) in l.modules.iter().zip(&l.merged) {
                w.insert(format!("{}.weight", m.path), mw.as_tensor().detach());
            }
            return w;
        }
        layout
            .specs()
            .iter()
            .zip(vars)
            .map(|(s, v)| (s.name.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// bf16 compute: `weights` cast as [`cast_param`] does, and the no-graph policy over them.
    pub(super) fn half_policy(
        cfg: &Config,
        weights: &Weights,
        dt: DType,
        dev: &Device,
    ) -> Result<(Weights, Model)> {
        let half: Weights = weights
            .iter()
            .map(|(k, t)| Ok((k.clone(), cast_param(t, dt)?)))
            .collect::<Result<_>>()?;
        let policy = Model::from_weights(cfg, &half, dt, dev)?;
        Ok((half, policy))
    }

    /// bf16 compute: recasts the policy's copies after the master weights changed.
    pub(super) fn refresh_half(&mut self) -> Result<()> {
        if self.half.is_some() {
            let w = Self::live_weights(&self.layout, &self.vars, &self.lora);
            let (h, p) = Self::half_policy(&self.model_cfg, &w, self.compute, &self.device)?;
            self.half = Some(h);
            self.policy = p;
        }
        Ok(())
    }

    /// The model that a forward with a graph runs on, with a graph to the `Var`s of `part`
    /// (other weights are constants). f32 full fine-tuning: the model over the `Var`s. bf16:
    /// the policy's bf16 weights with those of `part` replaced by differentiable casts of the
    /// `Var`s (LoRA: of `W + s·B·A`), so gradients come back to the f32 `Var`s.
    pub(super) fn graph_model(&self, part: Part) -> Result<Model> {
        let mut m = self.graph_model_of(part)?;
        m.set_matmul_precision(self.cfg.optim.matmul_precision);
        Ok(m)
    }

    fn graph_model_of(&self, part: Part) -> Result<Model> {
        if let Some(m) = &self.train_model {
            return Ok(m.clone());
        }
        match (&self.half, &self.lora) {
            (None, Some(_)) => match part {
                Part::All => self.lora_graph_model(None),
                Part::Layer(l) => self.lora_graph_model(Some(l)),
                Part::Outer => Ok(self.policy.clone()),
            },
            (Some(_), Some(_)) if part == Part::Outer => Ok(self.policy.clone()),
            (Some(half), lora) => {
                let mut w = half.clone();
                match lora {
                    None => {
                        for (s, v) in self.layout.specs().iter().zip(&self.vars) {
                            if part.holds(&s.name) {
                                w.insert(s.name.clone(), cast_param(v.as_tensor(), self.compute)?);
                            }
                        }
                    }
                    Some(l) => {
                        for m in &l.modules {
                            let name = format!("{}.weight", m.path);
                            if !part.holds(&name) {
                                continue;
                            }
                            let merged = merged_weight(
                                &l.base[&name],
                                self.vars[m.a].as_tensor(),
                                self.vars[m.b].as_tensor(),
                                l.scale,
                            )?;
                            w.insert(name, merged.to_dtype(self.compute)?);
                        }
                    }
                }
                Ok(Model::from_weights(
                    &self.model_cfg,
                    &w,
                    self.compute,
                    &self.device,
                )?)
            }
            (None, None) => Err(Error::invalid("no graph model")),
        }
    }
}
