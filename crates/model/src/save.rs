//! Saving: atomic file writes and Hugging Face checkpoint folders.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::chat::ChatTemplate;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::load::GenerationConfig;
use crate::tokenizer::Tokenizer;
use crate::Weights;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A name next to `path` for a temporary sibling (`.NAME.TAG-PID-NANOS`).
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(".{name}.{tag}-{}-{nanos}", std::process::id()))
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, "tmp");
    let res = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(path))?;
        f.write_all(bytes).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(parent_dir(path))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    sync_dir(dir).map_err(io_err(dir))
}

/// Flushes a folder's entries (a rename into it, a new file) to disk. Directories can be
/// opened read-only and synced on Unix; elsewhere this is a no-op.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The folder holding `path` ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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

/// Creates the folder `dir` atomically: `fill` writes into a fresh sibling temporary folder,
/// which is synced and renamed over `dir` (an existing `dir` is first renamed away, then
/// removed). On error the temporary folder is removed and `dir` is left as it was.
pub fn write_folder_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = sibling(dir, "tmp");
    let res = (|| {
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        fill(&tmp)?;
        fsync_dir(&tmp)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = sibling(dir, "old");
    let had_old = dir.exists();
    if had_old {
        if let Err(source) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    if let Err(source) = std::fs::rename(&tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source,
        });
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent)?;
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(())
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
