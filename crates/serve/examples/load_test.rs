//! Load test of `rzero serve`: C concurrent clients send completion requests for a bounded
//! time; prints requests/s, generated tokens/s, latency percentiles and errors as one JSON
//! line, and appends it to `bench/results/serve.jsonl` (atomically: temp file + rename).
//!
//! ```text
//! cargo run --release -p remote --example load_test -- \
//!     [--model smollm2|PATH] [--url http://HOST:PORT --served-model NAME] \
//!     [--clients 64] [--secs 30] [--max-tokens 32] [--max-batch-size 64] [--out FILE]
//! ```
//! Without `--url` the server runs in this process on 127.0.0.1 (ephemeral port) and the
//! clients reach it over real HTTP.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remote::{OpenAiClient, RemoteConfig, SamplingParams, TextRequest};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = arg(&args, "--clients").map_or(Ok(64), |s| s.parse())?;
    let secs: f64 = arg(&args, "--secs").map_or(Ok(30.0), |s| s.parse())?;
    let max_tokens: usize = arg(&args, "--max-tokens").map_or(Ok(32), |s| s.parse())?;
    let max_batch: usize = arg(&args, "--max-batch-size").map_or(Ok(64), |s| s.parse())?;
    let out = arg(&args, "--out").unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/results/serve.jsonl"
        )
        .to_string()
    });
    let mut spec = arg(&args, "--model").unwrap_or_else(|| "smollm2".into());
    if spec == "smollm2" {
        spec = model::smollm2::cached_gguf().to_string_lossy().into_owned();
    }

    let (_server, url, served) = match arg(&args, "--url") {
        Some(u) => (
            None,
            u,
            arg(&args, "--served-model").unwrap_or_else(|| "rzero".into()),
        ),
        None => {
            let loaded = model::load(&spec, &model::LoadOptions::default())?;
            let opts = rzero_serve::ServeOptions {
                served_model_name: "load-test".into(),
                ..rzero_serve::ServeOptions::default()
            };
            let cfg = engine::EngineConfig {
                max_batch_size: max_batch,
                ..engine::EngineConfig::default()
            };
            let sampler = Arc::new(engine::LocalSampler::from_loaded(&loaded, cfg)?);
            let h = rzero_serve::spawn(sampler, "127.0.0.1:0".parse()?, opts)?;
            let u = h.base_url();
            (Some(h), u, "load-test".to_string())
        }
    };
    let client = Arc::new(OpenAiClient::new(RemoteConfig {
        base_urls: vec![url.clone()],
        model: served,
        max_concurrency: clients,
        timeout_s: 300.0,
        retries: 0,
        ..RemoteConfig::default()
    })?);

    let stop = Arc::new(AtomicBool::new(false));
    let estimated = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let estimated = estimated.clone();
            let (client, stop, done, tokens, errors, latencies) = (
                client.clone(),
                stop.clone(),
                done.clone(),
                tokens.clone(),
                errors.clone(),
                latencies.clone(),
            );
            std::thread::spawn(move || {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = TextRequest::text(
                        format!("Question {c}.{k}: what is {c} plus {k}? Answer:"),
                        SamplingParams {
                            temperature: 1.0,
                            max_new_tokens: max_tokens,
                            ignore_eos: true,
                            seed: (c as u64) << 32 | k,
                            ..SamplingParams::default()
                        },
                    );
                    let t = Instant::now();
                    match client.generate(&[req]) {
                        Ok(r) => {
                            // Servers without token ids (llama.cpp): a `length` finish
                            // means max_tokens tokens; others are not counted.
                            let c = &r[0][0];
                            let n = match &c.token_ids {
                                Some(ids) => ids.len(),
                                None if c.finish_reason == remote::FinishReason::Length => {
                                    estimated.store(true, Ordering::Relaxed);
                                    max_tokens
                                }
                                None => {
                                    estimated.store(true, Ordering::Relaxed);
                                    0
                                }
                            };
                            tokens.fetch_add(n, Ordering::Relaxed);
                            done.fetch_add(1, Ordering::Relaxed);
                            latencies.lock().unwrap().push(t.elapsed().as_secs_f64());
                        }
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                    k += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let errs = errors.lock().unwrap().clone();
    let line = serde_json::json!({
        "bench": "serve_load",
        "model": spec,
        "server": if arg(&args, "--url").is_some() { url.as_str() } else { "in-process rzero serve" },
        "clients": clients,
        "max_tokens": max_tokens,
        "max_batch_size": max_batch,
        "elapsed_s": elapsed,
        "requests": done.load(Ordering::Relaxed),
        "requests_per_s": done.load(Ordering::Relaxed) as f64 / elapsed,
        "generated_tokens": tokens.load(Ordering::Relaxed),
        "tokens_per_s": tokens.load(Ordering::Relaxed) as f64 / elapsed,
        "tokens_from": if estimated.load(Ordering::Relaxed) { "finish_reason (no token ids)" } else { "token_ids" },
        "latency_p50_s": pct(0.5),
        "latency_p99_s": pct(0.99),
        "errors": errs.len(),
        "first_error": errs.first(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!("{line}");
    let path = std::path::Path::new(&out);
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.push_str(&line.to_string());
    text.push('\n');
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    if !errs.is_empty() {
        return Err(format!("{} errors, first: {}", errs.len(), errs[0]).into());
    }
    Ok(())
}
