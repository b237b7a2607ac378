//! The local Hugging Face cache: hub ids, the cache folder and its environment variables,
//! and finding a complete snapshot in it (no network). Re-exported by [`crate::hub`]; used
//! by [`crate::download`] too.

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
    if let Some(p) = std::env::var_os("HUGGINGFACE_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    home_dir().join(".cache").join("huggingface").join("hub")
}

/// The user's home folder (`HOME`, `USERPROFILE`, else `.`).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
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

/// Splits `org/name@revision` into the id and the revision (`main` when absent).
pub fn split_revision(spec: &str) -> (&str, &str) {
    match spec.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (spec, "main"),
    }
}

/// Resolve `id` in the cache folder `cache`, never downloading: the snapshot folder of the
/// requested revision (default `main`), which must contain `config.json` or a `.gguf` file.
pub fn resolve_in(id: &str, cache: &Path) -> Result<PathBuf> {
    let (repo_id, revision) = split_revision(id);
    resolve_cached(repo_id, revision, cache, offline())
}

/// [`resolve_in`] for `repo_id` at `revision`; `offline` only words the error (the model was
/// not downloaded because `HF_HUB_OFFLINE` is set).
pub fn resolve_cached(
    repo_id: &str,
    revision: &str,
    cache: &Path,
    offline: bool,
) -> Result<PathBuf> {
    let id = if revision == "main" {
        repo_id.to_string()
    } else {
        format!("{repo_id}@{revision}")
    };
    let revision = revision.to_string();
    let not_found = |why: &str| {
        let mode = if offline {
            format!(
                "HF_HUB_OFFLINE is set, so nothing is downloaded: unset it to download, or \
                 fetch it first with `rzero download {repo_id}`"
            )
        } else {
            format!("fetch it with `rzero download {repo_id}`")
        };
        Error::Hub(format!(
            "model {id:?} is not a local path and not in the Hugging Face cache {} ({why}; \
             {mode}, or pass a local folder / .gguf file)",
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
