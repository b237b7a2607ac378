//! `rzero bench model`: throughput of the plain model on this machine, f32:
//! `score` (batched forward + log-probs, no graph) and greedy generation with
//! `forward_packed` and per-sequence KV caches at batch 1 and a larger batch.

use std::time::Instant;

use anyhow::Context;
use model::SeqInput;
use serde_json::json;

/// Arguments of `rzero bench model`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: HF folder, .gguf file or hub id.
    #[arg(long)]
    pub model: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Score: number of sequences.
    #[arg(long, default_value_t = 8)]
    pub score_seqs: usize,
    /// Score: tokens per sequence (half prompt, half completion).
    #[arg(long, default_value_t = 256)]
    pub score_len: usize,
    /// Generate: prompt tokens.
    #[arg(long, default_value_t = 32)]
    pub prompt_len: usize,
    /// Generate: new tokens per sequence.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Generate: the larger batch size measured besides batch 1.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

/// Deterministic pseudo-random token ids (skipping the first few, often special).
fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (16 + s % (vocab as u64 - 16)) as u32
        })
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding of `batch` sequences; returns (prefill secs, decode secs, decode tokens).
fn generate(
    m: &model::Model,
    batch: usize,
    prompt_len: usize,
    new: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let vocab = m.config().vocab_size;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|i| tokens(prompt_len, vocab, 100 + i as u64))
        .collect();
    let mut caches: Vec<_> = (0..batch).map(|_| m.new_cache()).collect();
    let t0 = Instant::now();
    let mut seqs: Vec<SeqInput> = caches
        .iter_mut()
        .zip(&prompts)
        .map(|(c, p)| SeqInput {
            tokens: p,
            cache: c,
        })
        .collect();
    let logits = m.forward_packed(&mut seqs)?.to_vec2::<f32>()?;
    let prefill = t0.elapsed().as_secs_f64();
    let mut last: Vec<[u32; 1]> = logits.iter().map(|r| [argmax(r)]).collect();
    let t1 = Instant::now();
    for _ in 1..new {
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(&last)
            .map(|(c, t)| SeqInput {
                tokens: &t[..],
                cache: c,
            })
            .collect();
        let logits = m.forward_packed(&mut seqs)?.to_vec2::<f32>()?;
        last = logits.iter().map(|r| [argmax(r)]).collect();
    }
    Ok((prefill, t1.elapsed().as_secs_f64(), batch * (new - 1)))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = model::load(&args.model, &model::LoadOptions::default())
        .with_context(|| format!("loading {}", args.model))?;
    let m = loaded.model()?;
    let cfg = m.config().clone();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // 1. Score: seqs × len tokens, half prompt, half completion.
    let len = args.score_len.clamp(2, cfg.max_position_embeddings);
    let items: Vec<(Vec<u32>, Vec<u32>)> = (0..args.score_seqs.max(1))
        .map(|i| {
            let t = tokens(len, cfg.vocab_size, i as u64);
            (t[..len / 2].to_vec(), t[len / 2..].to_vec())
        })
        .collect();
    let t0 = Instant::now();
    let _ = model::logprobs::score(&m, &items, items.len())?;
    let score_secs = t0.elapsed().as_secs_f64();
    let score_tps = (items.len() * len) as f64 / score_secs;
    // 2. Greedy generation at batch 1 and at the larger batch.
    let new = args.new_tokens.max(2);
    let plen = args
        .prompt_len
        .max(1)
        .min(cfg.max_position_embeddings - new);
    let (pf1, dec1, n1) = generate(&m, 1, plen, new)?;
    let (pfb, decb, nb) = generate(&m, args.batch.max(1), plen, new)?;
    let mut r = json!({
        "model": args.model,
        "threads": threads,
        "score": {"seqs": items.len(), "len": len, "secs": score_secs, "tokens_per_s": score_tps},
        "generate_batch1": {"prompt_len": plen, "new_tokens": new, "prefill_secs": pf1,
            "decode_tokens_per_s": n1 as f64 / dec1},
        "generate_batch": {"batch": args.batch.max(1), "prompt_len": plen, "new_tokens": new,
            "prefill_secs": pfb, "decode_tokens_per_s": nb as f64 / decb},
    });
    super::bench::device_fields(&mut r, m.dtype());
    if args.json {
        println!("{r}");
    } else {
        println!(
            "model {} ({}, {}, {threads} threads)",
            args.model,
            r["dtype"].as_str().unwrap_or("?"),
            r["device"].as_str().unwrap_or("?")
        );
        println!(
            "score     {} x {} tokens: {:.0} tokens/s ({:.2} s)",
            items.len(),
            len,
            score_tps,
            score_secs
        );
        println!(
            "generate  batch 1: {:.1} tokens/s decode (prefill {} tokens in {:.3} s)",
            n1 as f64 / dec1,
            plen,
            pf1
        );
        println!(
            "generate  batch {}: {:.1} tokens/s decode (prefill {} x {} tokens in {:.3} s)",
            args.batch.max(1),
            nb as f64 / decb,
            args.batch.max(1),
            plen,
            pfb
        );
    }
    Ok(())
}
