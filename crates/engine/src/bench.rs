//! The generation benchmark behind `rzero bench generate` (kept in the library so the CLI
//! and `examples/bench_generate.rs` measure exactly the same thing).
//!
//! For a batch size B it sends B distinct story prompts ([`bench_prompt`]), sampling at
//! temperature 0.8 / top-p 0.95 with EOS ignored so each completion has exactly
//! `new_tokens` tokens, and measures prompt tokens/s (a run with one new token), aggregate
//! generated tokens/s (all generated tokens over the whole wall time, prefill included:
//! what a client sees) and decode tokens/s (wall time minus the prefill run's).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineConfig};
use crate::error::Result;
use crate::params::{Request, SamplingParams};
use crate::step::StepModel;
use crate::stop::Detokenize;

/// Prompt `i` of the benchmark (the same text `bench/llamacpp_peer.py` sends).
pub fn bench_prompt(i: usize) -> String {
    format!("Story {i}: Once upon a time, there was a little robot who")
}

/// One batch size's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// Concurrent requests.
    pub batch: usize,
    /// New tokens per request.
    pub new_tokens: usize,
    /// Prompt tokens of the batch.
    pub prompt_tokens: usize,
    /// Tokens generated in the timed run.
    pub generated_tokens: usize,
    /// Prompt tokens per second (prefill-only run).
    pub prompt_tps: f64,
    /// Generated tokens per second over the whole run (prefill included).
    pub gen_tps: f64,
    /// Generated tokens per second after subtracting the prefill time.
    pub decode_tps: f64,
    /// Wall time of the timed run, seconds.
    pub wall_s: f64,
}

/// Runs the benchmark for one batch size; `encode` tokenizes a prompt.
pub fn bench_batch<M: StepModel, D: Detokenize>(
    model: M,
    detok: D,
    encode: &dyn Fn(&str) -> Result<Vec<u32>>,
    mut cfg: EngineConfig,
    batch: usize,
    new_tokens: usize,
) -> Result<BenchRow> {
    cfg.max_batch_size = batch;
    let eng = Engine::new(model, detok, cfg)?;
    let reqs = |new: usize| -> Result<Vec<Request>> {
        (0..batch)
            .map(|i| {
                Ok(Request {
                    id: i as u64,
                    prompt_ids: encode(&bench_prompt(i))?,
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
    // Warm-up: thread pools, page faults.
    eng.generate(&reqs(4)?[..1], |_| {})?;
    let r1 = reqs(1)?;
    let prompt_tokens: usize = r1.iter().map(|r| r.prompt_ids.len()).sum();
    let t = Instant::now();
    eng.generate(&r1, |_| {})?;
    let prefill_s = t.elapsed().as_secs_f64();
    let r = reqs(new_tokens)?;
    let t = Instant::now();
    let out = eng.generate(&r, |_| {})?;
    let wall_s = t.elapsed().as_secs_f64();
    let generated: usize = out
        .iter()
        .flat_map(|o| &o.completions)
        .map(|c| c.token_ids.len())
        .sum();
    Ok(BenchRow {
        batch,
        new_tokens,
        prompt_tokens,
        generated_tokens: generated,
        prompt_tps: prompt_tokens as f64 / prefill_s,
        gen_tps: generated as f64 / wall_s,
        decode_tps: generated.saturating_sub(batch) as f64 / (wall_s - prefill_s).max(1e-9),
        wall_s,
    })
}
