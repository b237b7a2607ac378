//! The embedded default model (`--model smollm2`): SmolLM2-135M-Instruct as a Q4_1 GGUF,
//! fetched by `scripts/fetch-smollm2.sh` into rzero's cache folder. (Tests fetch it on
//! demand through the `testdata` crate.)

use std::path::PathBuf;

/// File name of the embedded default model.
pub const GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

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

/// Where the fetch script puts the GGUF (`cache_dir()/GGUF_NAME`; it may not exist).
pub fn cached_gguf() -> PathBuf {
    cache_dir().join(GGUF_NAME)
}
