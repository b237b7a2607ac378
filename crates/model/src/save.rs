//! Saving: Hugging Face checkpoint folders (atomic, through `fsutil`).

use std::collections::HashMap;
use std::path::Path;

use crate::chat::ChatTemplate;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generation::GenerationConfig;
use crate::tokenizer::Tokenizer;
use crate::Weights;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| fsutil::at(path)(source).into()
}

pub use fsutil::{parent_dir, sync_dir, write_folder_atomic};

/// Write `bytes` to `path` atomically ([`fsutil::write_atomic`]: a temporary file in the
/// same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fsutil::write_atomic(path, bytes)?)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        msg: format!("cannot serialize: {e}"),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Write `model.safetensors` (metadata `{"format": "pt"}`), each tensor in its own dtype.
/// With tied embeddings `lm_head.weight` is left out.
pub fn write_safetensors(path: &Path, cfg: &Config, weights: &Weights) -> Result<()> {
    let mut names: Vec<&String> = weights
        .keys()
        .filter(|n| !(cfg.tie_word_embeddings && n.as_str() == "lm_head.weight"))
        .collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = weights[name]
            .to_device(&candle_core::Device::Cpu)
            .and_then(|t| t.contiguous())
            .map_err(|e| Error::Weight {
                name: name.clone(),
                msg: format!("cannot copy to the CPU for saving: {e}"),
            })?;
        tensors.push((name.clone(), t));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors, Some(meta), path).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        msg: format!("cannot write safetensors: {e}"),
    })?;
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Save a Hugging Face checkpoint folder that [`crate::load`] and transformers read:
/// `config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json` (with the chat
/// template and bos/eos/pad tokens) and `generation_config.json`.
///
/// Atomic: everything is written into a sibling temporary folder, synced, then renamed over
/// `dir` (an existing `dir` is first renamed away, then removed).
pub fn save_hf_folder(
    dir: &Path,
    cfg: &Config,
    weights: &Weights,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
    generation: &GenerationConfig,
) -> Result<()> {
    write_folder_atomic(dir, |tmp| {
        let mut config = cfg.to_hf_json();
        // transformers records the dtype the weights are saved in.
        if let Some(t) = weights.get("model.embed_tokens.weight") {
            let name = match t.dtype() {
                candle_core::DType::BF16 => "bfloat16",
                candle_core::DType::F16 => "float16",
                _ => "float32",
            };
            config["torch_dtype"] = name.into();
        }
        write_json(&tmp.join("config.json"), &config)?;
        write_safetensors(&tmp.join("model.safetensors"), cfg, weights)?;
        tokenizer.save(tmp.join("tokenizer.json"))?;
        write_json(
            &tmp.join("tokenizer_config.json"),
            &tokenizer_config(cfg, tokenizer, chat_template, generation),
        )?;
        write_json(
            &tmp.join("generation_config.json"),
            &generation.to_hf_json(),
        )
    })
}

/// The `tokenizer_config.json` object (hub style).
fn tokenizer_config(
    cfg: &Config,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
    generation: &GenerationConfig,
) -> serde_json::Value {
    let tok = |id: Option<u32>| match id.and_then(|id| tokenizer.id_to_token(id)) {
        Some(s) => serde_json::Value::String(s),
        None => serde_json::Value::Null,
    };
    let bos = generation.bos_token_id.or(tokenizer.bos_token_id());
    let eos = generation
        .eos_token_ids
        .first()
        .or(tokenizer.eos_token_ids().first())
        .copied();
    let pad = generation.pad_token_id.or(tokenizer.pad_token_id());
    let mut m = serde_json::Map::new();
    m.insert("add_bos_token".into(), false.into());
    m.insert("add_eos_token".into(), false.into());
    m.insert("bos_token".into(), tok(bos));
    m.insert("eos_token".into(), tok(eos));
    m.insert("pad_token".into(), tok(pad));
    m.insert("unk_token".into(), serde_json::Value::Null);
    if let Some(t) = chat_template {
        m.insert("chat_template".into(), t.source().into());
    }
    m.insert("clean_up_tokenization_spaces".into(), false.into());
    m.insert(
        "model_max_length".into(),
        cfg.max_position_embeddings.into(),
    );
    m.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
    serde_json::Value::Object(m)
}
