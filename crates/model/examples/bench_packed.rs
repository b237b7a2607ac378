//! Quick throughput check of `score` and `forward_packed` greedy decoding (f32):
//! `cargo run --release -p model --example bench_packed -- MODEL [BATCH]`.
//! The CLI's `rzero bench model` reports the same figures.

use std::time::Instant;

use model::SeqInput;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args
        .get(1)
        .ok_or("usage: bench_packed MODEL [BATCH] [NEW]")?;
    let batches: Vec<usize> = args
        .get(2)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1, 32]);
    let new: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(64);
    let t = Instant::now();
    let loaded = model::load(spec, &model::LoadOptions::default())?;
    let m = loaded.model()?;
    eprintln!("loaded in {:.2}s", t.elapsed().as_secs_f64());
    let v = m.config().vocab_size;
    if std::env::var("SKIP_SCORE").is_err() {
        let items: Vec<(Vec<u32>, Vec<u32>)> = (0..8)
            .map(|i| {
                let t = tokens(256, v, i);
                (t[..128].to_vec(), t[128..].to_vec())
            })
            .collect();
        let t0 = Instant::now();
        model::logprobs::score(&m, &items, 8)?;
        let s = t0.elapsed().as_secs_f64();
        println!("score 8x256: {:.0} tok/s ({:.2}s)", 2048.0 / s, s);
    }
    for &b in &batches {
        let prompts: Vec<Vec<u32>> = (0..b).map(|i| tokens(32, v, 100 + i as u64)).collect();
        let mut caches: Vec<_> = (0..b).map(|_| m.new_cache()).collect();
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
        let pf = t0.elapsed().as_secs_f64();
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
        let d = t1.elapsed().as_secs_f64();
        println!(
            "batch {b}: prefill {}x32 in {:.3}s; decode {:.1} tok/s ({:.1} ms/step)",
            b,
            pf,
            (b * (new - 1)) as f64 / d,
            d * 1000.0 / (new - 1) as f64
        );
    }
    Ok(())
}
