//! LoRA: the trained `Var`s are the adapters `A` and `B` of each target module over a frozen
//! f32 base; the no-graph policy holds the merged weights `W + s·B·A`.

use candle_core::{DType, Device, Tensor, Var};
use model::lora::{merged_weight, module_path, module_shape, Adapter, AdapterConfig, LoraPair};
use model::{Config, Model, Weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Setup, Trainer};
use crate::adamw::FlatLayout;
use crate::config::LoraConfig;
use crate::{Error, Result};

/// One LoRA-adapted module.
pub(super) struct LoraModule {
    /// HF module path (`model.layers.0.self_attn.q_proj`).
    pub(super) path: String,
    /// Decoder layer.
    pub(super) layer: usize,
    /// Positions of `A` and `B` in [`Trainer::layout`] (and `vars`).
    pub(super) a: usize,
    pub(super) b: usize,
}

/// LoRA state: the frozen base and the adapted modules.
pub(super) struct LoraState {
    pub(super) cfg: LoraConfig,
    /// `alpha / rank`.
    pub(super) scale: f64,
    /// The frozen base weights (f32, on the device, no graph), by HF name.
    pub(super) base: Weights,
    /// The adapted modules, in layout order.
    pub(super) modules: Vec<LoraModule>,
    /// Merged weights `W + s·B·A` of the adapted modules (one per module), rewritten in place
    /// after every update; the no-graph policy holds views of them.
    pub(super) merged: Vec<Var>,
}

impl Trainer {
    /// LoRA: `A` (kaiming-uniform, bound `1/sqrt(in)` as PEFT's `kaiming_uniform_(a=√5)`)
    /// and `B` (zeros) per target module as the `Var`s, drawn from stream 1 of a ChaCha8
    /// seeded with `seed` (the trainer's own RNG, stream 0, is untouched); the base weights
    /// copied to f32; the policy over base weights with merged `Var`s for the adapted ones.
    pub(super) fn lora_setup(
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
    pub(super) fn lora_graph_model(&self, layer: Option<usize>) -> Result<Model> {
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
}
