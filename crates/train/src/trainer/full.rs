//! Full fine-tuning: one f32 `Var` per model parameter.

use candle_core::{DType, Device, Var};
use candle_nn::{VarBuilder, VarMap};
use model::{Config, Model, Weights};

use super::{Setup, Trainer};
use crate::adamw::FlatLayout;
use crate::{Error, Result};

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
    /// Full fine-tuning: one `Var` per parameter, the graph model over them and the
    /// no-graph policy over detached views of the same storage.
    pub(super) fn full_setup(
        model_cfg: &Config,
        weights: &Weights,
        device: &Device,
    ) -> Result<Setup> {
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

    pub(super) fn detached_model(
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
}
