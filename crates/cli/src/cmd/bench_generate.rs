//! `rzero bench generate`: prompt and generated tokens/s of the engine per batch size.
//!
//! The measurement is `engine::bench::bench_batch` (B distinct story prompts, temperature
//! 0.8, top-p 0.95, EOS ignored so every completion has exactly `--new-tokens` tokens):
//! prompt tokens/s, aggregate generated tokens/s (prefill included: what a client sees) and
//! decode tokens/s. `--json` prints one object per batch size. `bench/llamacpp_peer.py`
//! measures llama.cpp the same way.
//!
//! `--weights f32|bf16` measures a trained policy's case: the model's GGUF block copies
//! dropped (a policy's f32 weights have none), then read as f32 or through bf16 copies
//! (`engine.policy_weights`); `gguf` (the default) as loaded.
//!
//! `--random-init CONFIG.json` measures a model of that shape with random weights (no
//! tokenizer: prompts are their bytes as ids) on the process's `--device` and `--dtype`.

use anyhow::Context;
use serde_json::json;

use engine::bench::bench_batch;
use engine::EngineConfig;
use model::LoadOptions;

/// Arguments of `rzero bench generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: super::bench::ModelArgs,
    /// Batch sizes (concurrent requests).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batch: Vec<usize>,
    /// New tokens per request.
    #[arg(long, default_value_t = 256)]
    pub new_tokens: usize,
    /// KV-cache budget, bytes (suffixes K, M, G accepted).
    #[arg(long, default_value = "4G", value_parser = super::generate::parse_bytes)]
    pub max_kv_bytes: usize,
    /// Most prompt tokens prefilled per step.
    #[arg(long, default_value_t = 512)]
    pub prefill_chunk: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Weights read by the products: `gguf` (as loaded, GGUF block copies kept), `f32` (block
    /// copies dropped: a trained policy) or `bf16` (block copies dropped, bf16 copies made).
    #[arg(long, default_value = "gguf", value_parser = ["gguf", "f32", "bf16"])]
    pub weights: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(cfg) = &args.model.random_init {
        let (config, weights) = super::bench::random_init(cfg)?;
        let dtype = model::device::default_dtype();
        let dev = model::device::default_device();
        let m = model::Model::from_weights(&config, &weights, dtype, &dev)
            .context("building the model")?;
        drop(weights);
        let encode = super::bench::id_encode(config.vocab_size);
        let label = cfg.display().to_string();
        return measure(
            &args,
            &m,
            &super::bench::IdText,
            &encode,
            Vec::new(),
            &label,
        );
    }
    let spec = &args.model.model;
    let loaded = model::load(spec, &LoadOptions::default())
        .with_context(|| format!("loading model {spec}"))?;
    let mut m = loaded.model().context("building the model")?;
    if args.weights != "gguf" {
        m.attach_compact(&Default::default());
    }
    let encode = |s: &str| -> engine::Result<Vec<u32>> { Ok(loaded.tokenizer.encode(s, false)?) };
    let eos = loaded.generation.eos_token_ids.clone();
    measure(&args, &m, &loaded.tokenizer, &encode, eos, spec)
}

fn measure(
    args: &Args,
    m: &model::Model,
    detok: &dyn engine::Detokenize,
    encode: &dyn Fn(&str) -> engine::Result<Vec<u32>>,
    eos: Vec<u32>,
    label: &str,
) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t0 = std::time::Instant::now();
    let weights: engine::PolicyWeights = match args.weights.as_str() {
        "bf16" => engine::PolicyWeights::Bf16,
        _ => engine::PolicyWeights::F32,
    };
    // What `engine::LocalSampler` does for a rollout (the conversion timed once).
    let owned;
    let m = if weights == engine::PolicyWeights::Bf16 {
        let mut c = m.clone();
        c.attach_bf16();
        owned = c;
        &owned
    } else {
        m
    };
    let convert_s = t0.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for &b in &args.batch {
        anyhow::ensure!(b > 0, "batch sizes must be positive");
        let cfg = EngineConfig {
            max_batch_size: b,
            max_kv_bytes: args.max_kv_bytes,
            prefill_chunk: args.prefill_chunk,
            eos_token_ids: eos.clone(),
        };
        let cpu0 = super::bench_cluster::cpu_seconds();
        let r = bench_batch(m, detok, encode, cfg, b, args.new_tokens)
            .with_context(|| format!("batch {b}"))?;
        // CPU seconds of this process per generated token: comparable under load, where
        // wall-clock figures are not.
        let cpu_per_token = cpu0
            .zip(super::bench_cluster::cpu_seconds())
            .map(|(a, z)| (z - a) / (b * args.new_tokens) as f64);
        let mut row = serde_json::to_value(&r)?;
        row["engine"] = json!("rzero");
        row["model"] = json!(label);
        super::bench::device_fields(&mut row, m.dtype());
        row["threads"] = json!(threads);
        row["weights"] = json!(args.weights);
        row["compact_matrices"] = json!(m.compact_count());
        row["convert_s"] = json!(convert_s);
        row["cpu_s_per_token"] = json!(cpu_per_token);
        row["load_avg_1m"] = json!(super::bench_cluster::load_average());
        if let Some((free, total)) = model::device::cuda_mem_info(m.device()) {
            row["gpu_mem_used_bytes"] = json!(total - free);
        }
        if args.json {
            println!("{row}");
        } else {
            eprintln!(
                "batch {b:>3}: prompt {:>8.1} tok/s | generated {:>8.1} tok/s aggregate ({:.1} decode) | {:.1} s",
                r.prompt_tps, r.gen_tps, r.decode_tps, r.wall_s
            );
        }
        rows.push(r);
    }
    if !args.json {
        println!("| batch | prompt tok/s | generated tok/s (aggregate) | decode tok/s |");
        println!("|---:|---:|---:|---:|");
        for r in rows {
            println!(
                "| {} | {:.1} | {:.1} | {:.1} |",
                r.batch, r.prompt_tps, r.gen_tps, r.decode_tps
            );
        }
    }
    Ok(())
}
