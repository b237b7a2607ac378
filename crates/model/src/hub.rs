//! Hub ids (`Qwen/Qwen3-4B-Base`) resolved through the local Hugging Face cache.
//!
//! The cache folder is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`,
//! laid out as `hf-hub` / `huggingface_hub` lay it out:
//! `models--Org--Name/refs/<revision>` holds a commit hash and the files live in
//! `models--Org--Name/snapshots/<hash>/`. Nothing is downloaded (rzero runs offline; with
//! `HF_HUB_OFFLINE=1` that is explicit): a model that is not cached is a one-line
//! [`Error::Hub`] naming the id and the folder searched.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether `spec` looks like a hub id (`org/name`, optionally `org/name@revision`), as opposed
/// to a file path.
pub fn looks_like_hub_id(spec: &str) -> bool {
    let id = spec.split_once('@').map_or(spec, |(id, _)| id);
    let mut parts = id.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(org) && ok(name) && !name.ends_with(".gguf")
}

/// The hub cache folder this process uses (`HF_HUB_CACHE`, `HF_HOME/hub`,
/// `~/.cache/huggingface/hub`).
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

/// Whether `HF_HUB_OFFLINE` is set to a true value.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Resolve `id` (`org/name` or `org/name@revision`) in the default cache.
pub fn resolve(id: &str) -> Result<PathBuf> {
    resolve_in(id, &cache_dir())
}

/// Resolve `id` in the cache folder `cache`: the snapshot folder of the requested revision
/// (default `main`), which must contain `config.json` or a `.gguf` file.
pub fn resolve_in(id: &str, cache: &Path) -> Result<PathBuf> {
    let (repo_id, revision) = match id.split_once('@') {
        Some((r, rev)) => (r, rev.to_string()),
        None => (id, "main".to_string()),
    };
    let not_found = |why: &str| {
        let mode = if offline() {
            "HF_HUB_OFFLINE is set"
        } else {
            "rzero does not download models"
        };
        Error::Hub(format!(
            "model {id:?} is not a local path and not in the Hugging Face cache {} ({why}; \
             {mode}: download it with `huggingface-cli download {repo_id}` or pass a local \
             folder / .gguf file)",
            cache.display()
        ))
    };
    let repo = hf_hub::Cache::new(cache.to_path_buf()).repo(hf_hub::Repo::with_revision(
        repo_id.to_string(),
        hf_hub::RepoType::Model,
        revision.clone(),
    ));
    let folder = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    if !folder.is_dir() {
        return Err(not_found(&format!("no folder {}", folder.display())));
    }
    // A revision given as a full commit hash names the snapshot directly.
    let direct = folder.join("snapshots").join(&revision);
    let snapshot = if let Some(p) = repo.get("config.json") {
        p.parent().map(Path::to_path_buf).unwrap_or(direct)
    } else if direct.is_dir() {
        direct
    } else {
        let refs = folder.join("refs").join(&revision);
        match std::fs::read_to_string(&refs) {
            Ok(hash) => folder.join("snapshots").join(hash.trim()),
            Err(_) => return Err(not_found(&format!("no {}", refs.display()))),
        }
    };
    if !snapshot.is_dir() {
        return Err(not_found(&format!("no snapshot {}", snapshot.display())));
    }
    let has_gguf = std::fs::read_dir(&snapshot)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "gguf"))
        })
        .unwrap_or(false);
    if !snapshot.join("config.json").is_file() && !has_gguf {
        return Err(not_found(&format!(
            "snapshot {} has no config.json",
            snapshot.display()
        )));
    }
    Ok(snapshot)
}
