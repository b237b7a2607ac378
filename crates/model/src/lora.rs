//! LoRA adapters in the PEFT layout: naming, `adapter_config.json`, reading, writing and
//! merging into base weights.
//!
//! An adapter folder, as PEFT's `save_pretrained` writes it (and vLLM's `--lora-modules`
//! reads it):
//!
//! ```text
//! ADAPTER/
//!   adapter_config.json        peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha,
//!                              target_modules, base_model_name_or_path, ...
//!   adapter_model.safetensors  base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight [r, in]
//!                              base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight [out, r]
//!                              ... (mlp.gate_proj / up_proj / down_proj likewise)
//! ```
//!
//! The adapted weight is `W' = W + (lora_alpha / r) · B · A` ([`merged_weight`]); both the
//! trainer and [`merge_adapter`] compute it with that one function, so a merged load of a
//! saved adapter reproduces the trainer's policy bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::Weights;

/// Every module LoRA can adapt, in PEFT's usual order.
pub const ALL_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The prefix PEFT puts before the model's parameter names (`PeftModel.base_model.model`).
pub const PEFT_PREFIX: &str = "base_model.model.";

/// File name of the adapter configuration.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// File name of the adapter weights.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The HF module path of `module` in decoder layer `layer`
/// (`model.layers.3.self_attn.q_proj`); `None` for a name not in [`ALL_TARGETS`].
pub fn module_path(layer: usize, module: &str) -> Option<String> {
    let block = match module {
        "q_proj" | "k_proj" | "v_proj" | "o_proj" => "self_attn",
        "gate_proj" | "up_proj" | "down_proj" => "mlp",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{block}.{module}"))
}

/// `(out, in)` of `module`'s weight under `cfg`.
pub fn module_shape(cfg: &Config, module: &str) -> Option<(usize, usize)> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    Some(match module {
        "q_proj" => (q, h),
        "k_proj" | "v_proj" => (kv, h),
        "o_proj" => (h, q),
        "gate_proj" | "up_proj" => (i, h),
        "down_proj" => (h, i),
        _ => return None,
    })
}

/// Checks target module names: known, non-empty, no duplicates.
pub fn check_targets(targets: &[String]) -> Result<()> {
    if targets.is_empty() {
        return Err(Error::Invalid(
            "LoRA needs at least one target module".into(),
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        if !ALL_TARGETS.contains(&t.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown LoRA target module {t:?} (valid: {})",
                ALL_TARGETS.join(", ")
            )));
        }
        if targets[..i].contains(t) {
            return Err(Error::Invalid(format!(
                "LoRA target module {t:?} given twice"
            )));
        }
    }
    Ok(())
}

/// `W + (scale · B) · A` for `w` [out, in], `a` [r, in], `b` [out, r], computed in f32 and
/// cast back to `w`'s dtype. Differentiable in every argument. The scale is applied to the
/// small `B` so a graph through this keeps two [out, in] tensors (`(s·B)·A` and the sum), not
/// three. On f32 CPU tensors one fused op ([`crate::ops::lora_merge`]: the same values and
/// gradients, none computed for `w`).
pub fn merged_weight(w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    if [w, a, b].into_iter().all(crate::ops::fused_ok) {
        return Ok(crate::ops::lora_merge(w, a, b, scale)?);
    }
    let delta = (b.to_dtype(DType::F32)? * scale)?.matmul(&a.to_dtype(DType::F32)?)?;
    Ok((w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?)
}

/// What `adapter_config.json` says that matters here.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// Rank r.
    pub r: usize,
    /// α: the update is scaled by `α / r`.
    pub lora_alpha: f64,
    /// Adapted modules (names from [`ALL_TARGETS`]).
    pub target_modules: Vec<String>,
    /// The model the adapter applies to (folder, `.gguf` file or hub id).
    pub base_model_name_or_path: Option<String>,
}

impl AdapterConfig {
    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    /// The `adapter_config.json` object PEFT 0.13 writes for a plain LoRA on a causal LM
    /// (the keys vLLM's `PEFTHelper` reads included: `bias` "none", `use_dora` and
    /// `use_rslora` false, `modules_to_save` null).
    pub fn to_peft_json(&self) -> Value {
        // PEFT writes lora_alpha as given (an int in the usual case).
        let alpha = if self.lora_alpha.fract() == 0.0 && self.lora_alpha.abs() < 1e15 {
            json!(self.lora_alpha as i64)
        } else {
            json!(self.lora_alpha)
        };
        json!({
            "alpha_pattern": {},
            "auto_mapping": null,
            "base_model_name_or_path": self.base_model_name_or_path,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layer_replication": null,
            "layers_pattern": null,
            "layers_to_transform": null,
            "loftq_config": {},
            "lora_alpha": alpha,
            "lora_dropout": 0.0,
            "megatron_config": null,
            "megatron_core": "megatron.core",
            "modules_to_save": null,
            "peft_type": "LORA",
            "r": self.r,
            "rank_pattern": {},
            "revision": null,
            "target_modules": self.target_modules,
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": false,
        })
    }

    /// Parses an `adapter_config.json` object; refuses what a plain merge cannot honour
    /// (another PEFT type, DoRA, rsLoRA, biases, fan-in-fan-out, per-layer patterns).
    pub fn from_peft_json(v: &Value, origin: &Path) -> Result<Self> {
        let o = v
            .as_object()
            .ok_or_else(|| bad(origin, "must be a JSON object"))?;
        let peft_type = o.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(bad(
                origin,
                format!("peft_type {peft_type:?} is not supported (only \"LORA\")"),
            ));
        }
        let r = o
            .get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .ok_or_else(|| bad(origin, "`r` must be a positive integer"))? as usize;
        let lora_alpha = o
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(origin, "`lora_alpha` must be a number"))?;
        let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        for k in ["use_dora", "use_rslora", "fan_in_fan_out"] {
            if flag(k) {
                return Err(bad(origin, format!("`{k}: true` is not supported")));
            }
        }
        let bias = o.get("bias").and_then(Value::as_str).unwrap_or("none");
        if bias != "none" {
            return Err(bad(
                origin,
                format!("bias {bias:?} is not supported (only \"none\")"),
            ));
        }
        for k in ["rank_pattern", "alpha_pattern"] {
            if o.get(k)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(origin, format!("a non-empty `{k}` is not supported")));
            }
        }
        if o.get("layers_to_transform").is_some_and(|v| !v.is_null()) {
            return Err(bad(origin, "`layers_to_transform` is not supported"));
        }
        let target_modules = match o.get("target_modules") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(origin, "`target_modules` must hold strings"))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(Value::String(s)) => {
                return Err(bad(
                    origin,
                    format!("`target_modules` as a regex ({s:?}) is not supported"),
                ))
            }
            _ => return Err(bad(origin, "`target_modules` must be a list")),
        };
        check_targets(&target_modules).map_err(|e| bad(origin, e.to_string()))?;
        Ok(Self {
            r,
            lora_alpha,
            target_modules,
            base_model_name_or_path: o
                .get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// One adapted module: `A` [r, in] and `B` [out, r].
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// Down projection A [r, in].
    pub a: Tensor,
    /// Up projection B [out, r].
    pub b: Tensor,
}

/// An adapter: its configuration and one [`LoraPair`] per adapted module, keyed by the
/// module's HF path (`model.layers.0.self_attn.q_proj`).
#[derive(Debug, Clone)]
pub struct Adapter {
    /// The configuration.
    pub config: AdapterConfig,
    /// The matrices per module path.
    pub modules: BTreeMap<String, LoraPair>,
}

/// PEFT's key of `A` (`which = "A"`) or `B` of the module at `path`:
/// `base_model.model.{path}.lora_{which}.weight`.
pub fn peft_key(path: &str, which: &str) -> String {
    format!("{PEFT_PREFIX}{path}.lora_{which}.weight")
}

impl Adapter {
    /// Checks that every module of every layer named by the configuration is present with
    /// the shapes `cfg` implies, and that nothing else is.
    pub fn check(&self, cfg: &Config, origin: &Path) -> Result<()> {
        let r = self.config.r;
        let mut expected = 0;
        for l in 0..cfg.num_hidden_layers {
            for m in &self.config.target_modules {
                let (path, (out, inp)) = match (module_path(l, m), module_shape(cfg, m)) {
                    (Some(p), Some(s)) => (p, s),
                    _ => return Err(bad(origin, format!("unknown target module {m:?}"))),
                };
                expected += 1;
                let pair = self
                    .modules
                    .get(&path)
                    .ok_or_else(|| bad(origin, format!("missing {}", peft_key(&path, "A"))))?;
                for (which, t, shape) in [("A", &pair.a, [r, inp]), ("B", &pair.b, [out, r])] {
                    if t.dims() != shape {
                        return Err(bad(
                            origin,
                            format!(
                                "{} has shape {:?}, expected {shape:?}",
                                peft_key(&path, which),
                                t.dims()
                            ),
                        ));
                    }
                }
            }
        }
        if self.modules.len() != expected {
            let extra = self
                .modules
                .keys()
                .find(|k| {
                    !(0..cfg.num_hidden_layers).any(|l| {
                        self.config
                            .target_modules
                            .iter()
                            .any(|m| module_path(l, m).as_deref() == Some(k.as_str()))
                    })
                })
                .cloned()
                .unwrap_or_default();
            return Err(bad(
                origin,
                format!("tensors for {extra:?}, which is not a target module of this model"),
            ));
        }
        Ok(())
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (f32) into the existing
    /// folder `dir` (each file atomically).
    pub fn write_files(&self, dir: &Path) -> Result<()> {
        let cfg_path = dir.join(ADAPTER_CONFIG);
        let mut text = serde_json::to_string_pretty(&self.config.to_peft_json())
            .map_err(|e| bad(&cfg_path, format!("cannot serialize: {e}")))?;
        text.push('\n');
        fsutil::write_atomic(&cfg_path, text.as_bytes())?;
        let mut tensors = Vec::with_capacity(2 * self.modules.len());
        for (path, pair) in &self.modules {
            for (which, t) in [("A", &pair.a), ("B", &pair.b)] {
                let t = t
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_device(&Device::Cpu))
                    .and_then(|t| t.contiguous())?;
                tensors.push((peft_key(path, which), t));
            }
        }
        let path = dir.join(ADAPTER_WEIGHTS);
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        fsutil::write_atomic_with(&path, |tmp| {
            safetensors::serialize_to_file(tensors, Some(meta), tmp)
                .map_err(|e| bad(&path, format!("cannot write safetensors: {e}")))
        })
    }

    /// Saves the adapter as a folder `dir` (replaced atomically as a whole).
    pub fn save(&self, dir: &Path) -> Result<()> {
        fsutil::write_folder_atomic(dir, |tmp| self.write_files(tmp))
    }

    /// Reads an adapter folder; tensors in f32 on `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(fsutil::at(&cfg_path))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| bad(&cfg_path, format!("not valid JSON: {e}")))?;
        let config = AdapterConfig::from_peft_json(&v, &cfg_path)?;
        let wpath = dir.join(ADAPTER_WEIGHTS);
        if !wpath.is_file() {
            return Err(bad(
                &wpath,
                "missing (adapter_model.bin is not supported: save with safetensors)",
            ));
        }
        let mut a = HashMap::new();
        let mut b = HashMap::new();
        for (name, t) in crate::safetensors_io::read(&wpath, DType::F32, device)? {
            let rest = name.strip_prefix(PEFT_PREFIX).ok_or_else(|| {
                bad(
                    &wpath,
                    format!("tensor {name}: expected the prefix {PEFT_PREFIX:?}"),
                )
            })?;
            // PEFT may keep the adapter name ("lora_A.default.weight") in older saves.
            let rest = rest
                .replace(".lora_A.default.weight", ".lora_A.weight")
                .replace(".lora_B.default.weight", ".lora_B.weight");
            if let Some(p) = rest.strip_suffix(".lora_A.weight") {
                a.insert(p.to_string(), t);
            } else if let Some(p) = rest.strip_suffix(".lora_B.weight") {
                b.insert(p.to_string(), t);
            } else {
                return Err(bad(
                    &wpath,
                    format!("tensor {name} is neither lora_A nor lora_B"),
                ));
            }
        }
        let mut modules = BTreeMap::new();
        for (p, at) in a {
            let bt = b
                .remove(&p)
                .ok_or_else(|| bad(&wpath, format!("{} without lora_B", peft_key(&p, "A"))))?;
            modules.insert(p, LoraPair { a: at, b: bt });
        }
        if let Some(p) = b.keys().next() {
            return Err(bad(&wpath, format!("{} without lora_A", peft_key(p, "B"))));
        }
        Ok(Self { config, modules })
    }
}

/// Merges `adapter` into `weights` (`W ← W + (α/r)·B·A` for every adapted module), after
/// checking it against `cfg`. `origin` names the adapter in errors.
pub fn merge_adapter(
    cfg: &Config,
    weights: &mut Weights,
    adapter: &Adapter,
    origin: &Path,
) -> Result<()> {
    adapter.check(cfg, origin)?;
    let scale = adapter.config.scale();
    for (path, pair) in &adapter.modules {
        let name = format!("{path}.weight");
        let w = weights
            .get(&name)
            .ok_or_else(|| bad(origin, format!("the base model has no {name}")))?;
        let dev = w.device();
        let merged = merged_weight(w, &pair.a.to_device(dev)?, &pair.b.to_device(dev)?, scale)?;
        weights.insert(name, merged);
    }
    Ok(())
}

/// Where an adapter's `base_model_name_or_path` points: relative paths are tried against
/// the adapter folder first, then as given (a path or a hub id).
pub fn resolve_base(adapter_dir: &Path, base: &str) -> PathBuf {
    let p = Path::new(base);
    if p.is_relative() {
        let beside = adapter_dir.join(p);
        if beside.exists() {
            return beside;
        }
    }
    p.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_config_round_trip_and_merge() {
        assert_eq!(
            module_path(3, "q_proj").as_deref(),
            Some("model.layers.3.self_attn.q_proj")
        );
        assert_eq!(
            module_path(0, "down_proj").as_deref(),
            Some("model.layers.0.mlp.down_proj")
        );
        assert_eq!(module_path(0, "lm_head"), None);
        assert_eq!(
            peft_key("model.layers.0.self_attn.q_proj", "A"),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        );
        let c = AdapterConfig {
            r: 4,
            lora_alpha: 8.0,
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            base_model_name_or_path: Some("/m".into()),
        };
        let j = c.to_peft_json();
        assert_eq!(j["lora_alpha"], json!(8));
        assert_eq!(j["peft_type"], "LORA");
        assert_eq!(j["task_type"], "CAUSAL_LM");
        assert_eq!(j["bias"], "none");
        assert_eq!(
            AdapterConfig::from_peft_json(&j, Path::new("x")).unwrap(),
            c
        );
        assert_eq!(c.scale(), 2.0);
        let mut dora = j.clone();
        dora["use_dora"] = json!(true);
        let e = AdapterConfig::from_peft_json(&dora, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("use_dora"), "{e}");
        assert!(check_targets(&["q_proj".into(), "lm_head".into()]).is_err());
        assert!(check_targets(&["q_proj".into(), "q_proj".into()]).is_err());

        // W + s·B·A by hand: W = 0 [2,3], A = [[1,2,3]], B = [[1],[2]], s = 0.5.
        let dev = Device::Cpu;
        let w = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let a = Tensor::new(&[[1f32, 2., 3.]], &dev).unwrap();
        let b = Tensor::new(&[[1f32], [2.]], &dev).unwrap();
        let m = merged_weight(&w, &a, &b, 0.5).unwrap();
        assert_eq!(
            m.to_vec2::<f32>().unwrap(),
            vec![vec![0.5, 1.0, 1.5], vec![1.0, 2.0, 3.0]]
        );
    }

    /// A failed write leaves no temporary file behind.
    #[test]
    fn write_files_cleans_up_on_error() {
        let dev = Device::Cpu;
        let adapter = Adapter {
            config: AdapterConfig {
                r: 1,
                lora_alpha: 2.0,
                target_modules: vec!["q_proj".into()],
                base_model_name_or_path: None,
            },
            modules: BTreeMap::from([(
                "model.layers.0.self_attn.q_proj".to_string(),
                LoraPair {
                    a: Tensor::zeros((1, 2), DType::F32, &dev).unwrap(),
                    b: Tensor::zeros((2, 1), DType::F32, &dev).unwrap(),
                },
            )]),
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // The weights' name is taken by a non-empty folder: the final rename fails.
        std::fs::create_dir_all(dir.join(ADAPTER_WEIGHTS).join("x")).unwrap();
        assert!(adapter.write_files(dir).is_err());
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [ADAPTER_CONFIG, ADAPTER_WEIGHTS],
            "leftovers: {names:?}"
        );
    }
}
