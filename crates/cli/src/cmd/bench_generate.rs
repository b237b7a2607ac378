//! `rzero bench generate`: prompt and generated tokens/s of the engine per batch size.
//!
//! For each batch size B it sends B distinct story prompts (sampling at temperature 0.8,
//! top-p 0.95, EOS ignored so every completion has exactly `--new-tokens` tokens) and
//! measures: prompt tokens/s (a run with one new token), aggregate generated tokens/s
//! (all tokens over the whole wall time, prefill included: what a client sees) and decode
//! tokens/s (wall time minus the prefill run). `--json` prints one object per batch size.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use engine::{Engine, EngineConfig, Request, SamplingParams};
use model::LoadOptions;

/// Arguments of `rzero bench generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: HF folder, .gguf file or hub id in the local cache.
    #[arg(long)]
    pub model: String,
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
}

/// The benchmark's prompts (the same ones `bench/llamacpp_peer.py` sends).
pub fn prompt(i: usize) -> String {
    format!("Story {i}: Once upon a time, there was a little robot who")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = model::load(&args.model, &LoadOptions::default())
        .with_context(|| format!("loading model {}", args.model))?;
    let m = loaded.model().context("building the model")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for &b in &args.batch {
        anyhow::ensure!(b > 0, "batch sizes must be positive");
        let cfg = EngineConfig {
            max_batch_size: b,
            max_kv_bytes: args.max_kv_bytes,
            prefill_chunk: args.prefill_chunk,
            eos_token_ids: loaded.generation.eos_token_ids.clone(),
        };
        let eng = Engine::new(&m, &loaded.tokenizer, cfg)?;
        let reqs = |new: usize| -> anyhow::Result<Vec<Request>> {
            (0..b)
                .map(|i| {
                    Ok(Request {
                        id: i as u64,
                        prompt_ids: loaded.tokenizer.encode(&prompt(i), false)?,
                        params: SamplingParams {
                            temperature: 0.8,
                            top_p: 0.95,
                            max_new_tokens: new,
                            ignore_eos: true,
                            seed: i as u64,
                            ..SamplingParams::default()
                        },
                    })
                })
                .collect()
        };
        // Warm-up (thread pools, page faults).
        eng.generate(&reqs(4)?[..1], |_| {})?;
        let r1 = reqs(1)?;
        let prompt_tokens: usize = r1.iter().map(|r| r.prompt_ids.len()).sum();
        let t = Instant::now();
        eng.generate(&r1, |_| {})?;
        let prefill_s = t.elapsed().as_secs_f64();
        let r = reqs(args.new_tokens)?;
        let t = Instant::now();
        let out = eng.generate(&r, |_| {})?;
        let wall_s = t.elapsed().as_secs_f64();
        let generated: usize = out
            .iter()
            .flat_map(|o| &o.completions)
            .map(|c| c.token_ids.len())
            .sum();
        let row = json!({
            "engine": "rzero",
            "model": args.model,
            "dtype": "f32",
            "batch": b,
            "new_tokens": args.new_tokens,
            "prompt_tokens": prompt_tokens,
            "generated_tokens": generated,
            "prompt_tps": prompt_tokens as f64 / prefill_s,
            "gen_tps": generated as f64 / wall_s,
            "decode_tps": (generated - b) as f64 / (wall_s - prefill_s).max(1e-9),
            "wall_s": wall_s,
            "threads": threads,
        });
        if args.json {
            println!("{row}");
        } else {
            eprintln!(
                "batch {b:>3}: prompt {:>8.1} tok/s | generated {:>8.1} tok/s aggregate ({:.1} decode) | {wall_s:.1} s",
                row["prompt_tps"].as_f64().unwrap_or(0.0),
                row["gen_tps"].as_f64().unwrap_or(0.0),
                row["decode_tps"].as_f64().unwrap_or(0.0),
            );
        }
        rows.push(row);
    }
    if !args.json {
        println!("| batch | prompt tok/s | generated tok/s (aggregate) | decode tok/s |");
        println!("|---:|---:|---:|---:|");
        for r in rows {
            println!(
                "| {} | {:.1} | {:.1} | {:.1} |",
                r["batch"],
                r["prompt_tps"].as_f64().unwrap_or(0.0),
                r["gen_tps"].as_f64().unwrap_or(0.0),
                r["decode_tps"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
