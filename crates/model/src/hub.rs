//! Hub ids (`Qwen/Qwen3-4B-Base`, `org/name@revision`): found in the local Hugging Face
//! cache, or downloaded into it ([`crate::download`]).
//!
//! The cache folder is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`,
//! laid out as `hf-hub` / `huggingface_hub` lay it out:
//! `models--Org--Name/refs/<revision>` holds a commit hash and the files live in
//! `models--Org--Name/snapshots/<hash>/`. [`resolve`] uses a complete cached snapshot with no
//! network request, and downloads what is missing otherwise; with `HF_HUB_OFFLINE=1` it never
//! touches the network, and a model that is not cached is a one-line [`crate::Error::Hub`] naming
//! the id and the folder searched.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::Result;

pub use crate::cache::{
    cache_dir, home_dir, looks_like_hub_id, offline, resolve_cached, resolve_in, split_revision,
};

type ProgressFactory = dyn Fn() -> Box<dyn crate::download::Progress> + Send + Sync;
static PROGRESS: OnceLock<Box<ProgressFactory>> = OnceLock::new();

/// Sets how downloads started by [`resolve`] (and so by [`crate::load`]) report progress (the
/// binary installs progress bars; the default logs a line per file). Only the first call
/// counts.
pub fn set_progress(f: impl Fn() -> Box<dyn crate::download::Progress> + Send + Sync + 'static) {
    let _ = PROGRESS.set(Box::new(f));
}

fn new_progress() -> Box<dyn crate::download::Progress> {
    match PROGRESS.get() {
        Some(f) => f(),
        None => Box::new(crate::download::LogProgress::default()),
    }
}

/// Resolve `spec` (`org/name` or `org/name@revision`) with the options from the environment
/// ([`crate::download::HubOptions::from_env`]): the cached snapshot if complete, else
/// downloaded (unless `HF_HUB_OFFLINE` is set).
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let (id, revision) = split_revision(spec);
    let opts = crate::download::HubOptions::from_env();
    crate::download::snapshot(id, revision, &opts, new_progress().as_mut())
}
