//! Loading a model: a Hugging Face folder, a `.gguf` file, or a hub id (from the local cache,
//! downloaded when missing).
//!
//! A folder holds `config.json`, `model.safetensors` (or a sharded
//! `model.safetensors.index.json`), `tokenizer.json`, and optionally `tokenizer_config.json`
//! (chat template, bos/eos/pad tokens), `chat_template.jinja` and `generation_config.json`.
//! Every weight is checked against the configuration (presence and shape) and errors name the
//! file at fault.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use serde_json::Value;

use crate::chat::ChatTemplate;
use crate::config::{Arch, Config};
use crate::error::{Error, Result};
pub use crate::generation::GenerationConfig;
use crate::tokenizer::Tokenizer;
use crate::transformer::Model;
use crate::Weights;

/// Where and in which dtype to put the weights.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Weight dtype (F32 by default; BF16/F16 for inference on GPU).
    pub dtype: DType,
    /// Device for the weights.
    pub device: Device,
}

impl Default for LoadOptions {
    /// The process's dtype and device (f32 on the CPU unless the binary picked others with
    /// `--dtype` / `--device`: [`crate::device`]).
    fn default() -> Self {
        Self {
            dtype: crate::device::default_dtype(),
            device: crate::device::default_device(),
        }
    }
}

/// A loaded model: everything needed to build a [`Model`] and talk to it.
#[derive(Debug)]
pub struct LoadedModel {
    /// Resolved configuration.
    pub config: Config,
    /// Weights by HF name, in the requested dtype and device.
    pub weights: Weights,
    /// Tokenizer with special ids set.
    pub tokenizer: Tokenizer,
    /// The model's chat template, if it has one.
    pub chat_template: Option<ChatTemplate>,
    /// Generation defaults (special ids always filled in where known).
    pub generation: GenerationConfig,
    /// The folder or file the model came from.
    pub source: PathBuf,
    /// Block-format copies of GGUF weights, read by [`Model::forward_packed`] in place of
    /// the f32 ones while they still mirror them (empty for other sources).
    pub compact: crate::compact::CompactWeights,
}

impl LoadedModel {
    /// Build the [`Model`] from the loaded weights (same dtype and device).
    pub fn model(&self) -> Result<Model> {
        let embed = self
            .weights
            .get("model.embed_tokens.weight")
            .ok_or_else(|| Error::Weight {
                name: "model.embed_tokens.weight".into(),
                msg: format!("missing (loaded from {})", self.source.display()),
            })?;
        let mut m =
            Model::from_weights(&self.config, &self.weights, embed.dtype(), embed.device())?;
        m.attach_compact(&self.compact);
        Ok(m)
    }

    /// Ids that end generation: the generation config's EOS ids, then the tokenizer's
    /// (each once, in that order).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut eos = self.generation.eos_token_ids.clone();
        for &e in self.tokenizer.eos_token_ids() {
            if !eos.contains(&e) {
                eos.push(e);
            }
        }
        eos
    }

    /// The chat template, or ChatML if the model has none.
    pub fn chat_template_or_chatml(&self) -> ChatTemplate {
        self.chat_template
            .clone()
            .unwrap_or_else(ChatTemplate::chatml)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| fsutil::at(path)(source).into()
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Load `spec`: a model folder, a `.gguf` file, or a hub id (`org/name[@revision]`) found in
/// the local Hugging Face cache or downloaded into it ([`crate::hub::resolve`]).
///
/// A folder holding a PEFT LoRA adapter (`adapter_config.json`, no `config.json`) loads the
/// adapter's `base_model_name_or_path` and merges the adapter into it
/// ([`load_with_adapter`]).
pub fn load(spec: &str, opts: &LoadOptions) -> Result<LoadedModel> {
    load_at_depth(spec, opts, 0)
}

/// Adapters whose base is itself an adapter folder, at most this deep (a
/// `base_model_name_or_path` pointing back at its own folder would otherwise never end).
const MAX_ADAPTER_DEPTH: usize = 4;

fn load_at_depth(spec: &str, opts: &LoadOptions, depth: usize) -> Result<LoadedModel> {
    let path = Path::new(spec);
    if path.is_dir()
        && !path.join("config.json").is_file()
        && path.join(crate::lora::ADAPTER_CONFIG).is_file()
    {
        let cfg_path = path.join(crate::lora::ADAPTER_CONFIG);
        if depth >= MAX_ADAPTER_DEPTH {
            return Err(bad(
                &cfg_path,
                format!(
                    "base_model_name_or_path leads through more than {MAX_ADAPTER_DEPTH} \
                     adapter folders (does it point back at an adapter?)"
                ),
            ));
        }
        let cfg = crate::lora::AdapterConfig::from_peft_json(&read_json(&cfg_path)?, &cfg_path)?;
        let base = cfg.base_model_name_or_path.ok_or_else(|| {
            bad(
                &cfg_path,
                "no base_model_name_or_path: load the base model with the adapter explicitly",
            )
        })?;
        let base = crate::lora::resolve_base(path, &base);
        return load_with_adapter_at_depth(&base.to_string_lossy(), path, opts, depth + 1);
    }
    if path.is_dir() {
        load_folder(path, opts)
    } else if path.is_file() {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            load_gguf_file(path, opts)
        } else if path.file_name().is_some_and(|n| n == "config.json") {
            load_folder(path.parent().unwrap_or(Path::new(".")), opts)
        } else {
            Err(bad(
                path,
                "not a model: expected a folder with config.json, a .gguf file or a hub id",
            ))
        }
    } else if crate::hub::looks_like_hub_id(spec) && !spec.starts_with("./") {
        let snapshot = crate::hub::resolve(spec).map_err(|e| match e {
            Error::Hub(msg) if !msg.contains("not a local path") => Error::Hub(format!(
                "{spec} is not a local folder or file; as a Hugging Face Hub id: {msg}"
            )),
            other => other,
        })?;
        let gguf = first_gguf(&snapshot);
        match (snapshot.join("config.json").is_file(), gguf) {
            (false, Some(g)) => load_gguf_file(&g, opts),
            _ => load_folder(&snapshot, opts),
        }
    } else {
        Err(bad(
            path,
            "no such model folder or file (nor a hub id of the form org/name)",
        ))
    }
}

/// Loads the base model `spec` (as [`load`] does) and merges the PEFT LoRA adapter in the
/// folder `adapter` into its weights: `W ← W + (lora_alpha / r)·B·A`, computed in f32 (see
/// [`crate::lora::merged_weight`]). The adapter must match the model's shapes.
pub fn load_with_adapter(spec: &str, adapter: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    load_with_adapter_at_depth(spec, adapter, opts, 0)
}

fn load_with_adapter_at_depth(
    spec: &str,
    adapter: &Path,
    opts: &LoadOptions,
    depth: usize,
) -> Result<LoadedModel> {
    let mut m = load_at_depth(spec, opts, depth)?;
    let a = crate::lora::Adapter::load(adapter, &opts.device)?;
    crate::lora::merge_adapter(&m.config, &mut m.weights, &a, adapter)?;
    tracing::info!(
        base = %m.source.display(),
        adapter = %adapter.display(),
        r = a.config.r,
        "LoRA adapter merged"
    );
    Ok(m)
}

fn first_gguf(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    v.sort();
    v.into_iter().next()
}

/// Load a `.gguf` file.
pub fn load_gguf_file(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let g = crate::gguf::load_gguf(path, opts.dtype, &opts.device)?;
    check_weights(&g.config, &g.weights, &|_| path.to_path_buf())?;
    let chat_template = match &g.chat_template {
        Some(src) => Some(
            ChatTemplate::new(src.clone(), g.bos_token.clone(), g.eos_token.clone())
                .map_err(|e| bad(path, format!("tokenizer.chat_template: {e}")))?,
        ),
        None => None,
    };
    let generation = GenerationConfig {
        bos_token_id: g.tokenizer.bos_token_id(),
        eos_token_ids: g.tokenizer.eos_token_ids().to_vec(),
        pad_token_id: g.tokenizer.pad_token_id(),
        ..Default::default()
    };
    Ok(LoadedModel {
        config: g.config,
        weights: g.weights,
        tokenizer: g.tokenizer,
        chat_template,
        generation,
        source: path.to_path_buf(),
        compact: g.compact,
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))
}

/// A special token in `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Load a Hugging Face model folder.
pub fn load_folder(dir: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(bad(
            &config_path,
            "missing: a model folder needs config.json",
        ));
    }
    let mut config = Config::from_hf_json(&config_path).map_err(|e| match e {
        Error::UnknownArch(name) => bad(
            &config_path,
            format!("unsupported architecture {name:?} (supported: llama, qwen2, qwen3)"),
        ),
        other => other,
    })?;

    // Weights.
    let (weights, origin) = load_safetensors_folder(dir, opts)?;
    check_weights(&config, &weights, &|name| {
        origin
            .get(name)
            .cloned()
            .unwrap_or_else(|| dir.join("model.safetensors"))
    })?;

    // Tokenizer.
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(bad(
            &tok_path,
            "missing: a model folder needs tokenizer.json",
        ));
    }
    let mut tokenizer = Tokenizer::from_file(&tok_path)?;

    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.is_file() {
        Some(read_json(&tc_path)?)
    } else {
        None
    };
    let gc_path = dir.join("generation_config.json");
    let mut generation = if gc_path.is_file() {
        GenerationConfig::from_hf_value(&read_json(&gc_path)?, &gc_path)?
    } else {
        GenerationConfig::default()
    };

    // A special token of tokenizer_config.json: its string (for the chat template) and its id
    // (None, with a warning, when tokenizer.json does not know it).
    let tc_token = |k: &str| -> (Option<String>, Option<u32>) {
        let Some(s) = token_string(tc.as_ref().and_then(|t| t.get(k))) else {
            return (None, None);
        };
        let id = tokenizer.token_to_id(&s);
        if id.is_none() {
            tracing::warn!(
                "{}: `{k}` {s:?} is not in the vocabulary of tokenizer.json; ignored",
                tc_path.display()
            );
        }
        (Some(s), id)
    };
    let (bos_str, bos_tok) = tc_token("bos_token");
    let (eos_str, eos_tok) = tc_token("eos_token");
    let (_, pad_tok) = tc_token("pad_token");

    // Special ids: generation_config first, then config.json, then tokenizer_config.json.
    let mut eos = generation.eos_token_ids.clone();
    for id in config.eos_token_ids.iter().copied().chain(eos_tok) {
        if !eos.contains(&id) {
            eos.push(id);
        }
    }
    let bos = generation.bos_token_id.or(config.bos_token_id).or(bos_tok);
    let pad = pad_tok.or(generation.pad_token_id).or(config.pad_token_id);
    generation.eos_token_ids = eos.clone();
    generation.bos_token_id = bos;
    generation.pad_token_id = pad;
    tokenizer.set_special_ids(bos, eos.clone(), pad);
    if config.eos_token_ids.is_empty() {
        config.eos_token_ids = eos;
    }

    let source = chat_template_source(dir, tc.as_ref(), &tc_path)?;
    let chat_template = match source {
        None => None,
        Some((src, from)) => Some(
            ChatTemplate::new(src, bos_str, eos_str)
                .map_err(|e| bad(&from, format!("chat_template: {e}")))?,
        ),
    };

    Ok(LoadedModel {
        config,
        weights,
        tokenizer,
        chat_template,
        generation,
        source: dir.to_path_buf(),
        compact: Default::default(),
    })
}

/// The chat template's source and the file it comes from: `chat_template.jinja`, else
/// `tokenizer_config.json`'s `chat_template` (a string, or a list whose `default` entry, else
/// first entry, counts).
fn chat_template_source(
    dir: &Path,
    tc: Option<&Value>,
    tc_path: &Path,
) -> Result<Option<(String, PathBuf)>> {
    let jinja_path = dir.join("chat_template.jinja");
    Ok(if jinja_path.is_file() {
        Some((
            std::fs::read_to_string(&jinja_path).map_err(io(&jinja_path))?,
            jinja_path.clone(),
        ))
    } else {
        match tc.and_then(|t| t.get("chat_template")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some((s.clone(), tc_path.to_path_buf())),
            Some(Value::Array(list)) => {
                let pick = |name: &str| {
                    list.iter().find_map(|e| {
                        (e.get("name")?.as_str()? == name)
                            .then(|| e.get("template")?.as_str().map(str::to_string))
                            .flatten()
                    })
                };
                let t = pick("default").or_else(|| {
                    list.first()
                        .and_then(|e| e.get("template")?.as_str().map(str::to_string))
                });
                t.map(|s| (s, tc_path.to_path_buf()))
            }
            Some(other) => {
                return Err(bad(
                    tc_path,
                    format!("`chat_template` must be a string or a list, got {other}"),
                ))
            }
        }
    })
}

/// Read `model.safetensors` or the shards of `model.safetensors.index.json`. Returns the weights
/// (in `opts.dtype` on `opts.device`) and, for each, the file it came from.
fn load_safetensors_folder(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<(Weights, HashMap<String, PathBuf>)> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let v = read_json(&index)?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(&index, "missing object `weight_map`"))?;
        let mut shards = BTreeSet::new();
        for (name, file) in map {
            let f = file
                .as_str()
                .ok_or_else(|| bad(&index, format!("weight_map[{name:?}] is not a file name")))?;
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                return Err(bad(
                    &index,
                    format!("weight_map[{name:?}] = {f:?} is not a plain file name"),
                ));
            }
            shards.insert(dir.join(f));
        }
        shards.into_iter().collect()
    } else {
        return Err(bad(
            &single,
            "missing: a model folder needs model.safetensors or model.safetensors.index.json",
        ));
    };
    let mut weights = Weights::new();
    let mut origin = HashMap::new();
    for file in files {
        for (name, t) in read_safetensors(&file, opts)? {
            if origin.insert(name.clone(), file.clone()).is_some() {
                return Err(bad(&file, format!("tensor {name} appears in two shards")));
            }
            weights.insert(name, t);
        }
    }
    Ok((weights, origin))
}

/// Read one safetensors file into tensors of `opts.dtype` on `opts.device`.
pub fn read_safetensors(path: &Path, opts: &LoadOptions) -> Result<Vec<(String, Tensor)>> {
    crate::safetensors_io::read(path, opts.dtype, &opts.device)
}

/// The HF parameter names and shapes a model with `cfg` needs (no `lm_head.weight` when tied).
pub fn expected_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (h, d, v, i) = (
        cfg.hidden_size,
        cfg.head_dim,
        cfg.vocab_size,
        cfg.intermediate_size,
    );
    let q = cfg.num_attention_heads * d;
    let kv = cfg.num_key_value_heads * d;
    let mut out = vec![
        ("model.embed_tokens.weight".to_string(), vec![v, h]),
        ("model.norm.weight".to_string(), vec![h]),
    ];
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, h]));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        out.push((p("input_layernorm.weight"), vec![h]));
        out.push((p("post_attention_layernorm.weight"), vec![h]));
        out.push((p("self_attn.q_proj.weight"), vec![q, h]));
        out.push((p("self_attn.k_proj.weight"), vec![kv, h]));
        out.push((p("self_attn.v_proj.weight"), vec![kv, h]));
        out.push((p("self_attn.o_proj.weight"), vec![h, q]));
        if cfg.attention_bias {
            out.push((p("self_attn.q_proj.bias"), vec![q]));
            out.push((p("self_attn.k_proj.bias"), vec![kv]));
            out.push((p("self_attn.v_proj.bias"), vec![kv]));
        }
        if cfg.qk_norm || cfg.arch == Arch::Qwen3 {
            out.push((p("self_attn.q_norm.weight"), vec![d]));
            out.push((p("self_attn.k_norm.weight"), vec![d]));
        }
        out.push((p("mlp.gate_proj.weight"), vec![i, h]));
        out.push((p("mlp.up_proj.weight"), vec![i, h]));
        out.push((p("mlp.down_proj.weight"), vec![h, i]));
    }
    out
}

/// Check that every weight the config needs is present with the right shape. `file_of` names
/// the file a tensor came from (for errors).
pub fn check_weights(cfg: &Config, w: &Weights, file_of: &dyn Fn(&str) -> PathBuf) -> Result<()> {
    for (name, shape) in expected_shapes(cfg) {
        match w.get(&name) {
            None => {
                return Err(bad(
                    &file_of(&name),
                    format!("missing tensor {name} (expected shape {shape:?})"),
                ))
            }
            Some(t) if t.dims() != shape.as_slice() => {
                return Err(bad(
                    &file_of(&name),
                    format!(
                        "tensor {name} has shape {:?}, the config needs {shape:?}",
                        t.dims()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
