//! Bounded abuse test of `rzero serve` on 127.0.0.1: C clients send a seeded mix of normal,
//! large-`n`, chat, oversized (prompt bytes, body bytes, `n` × `max_tokens`), malformed and
//! disconnecting requests for a bounded time, while a prober times `/health` every 100 ms and
//! the process's resident memory is sampled. Every answered request must be a 200 or a 4xx/5xx
//! with an OpenAI-style JSON error; `/health` must answer within 100 ms; memory must stay
//! bounded. Prints one JSON line (p50/p99 latency of the 200s, tokens/s, status counts,
//! `/health` latency, RSS) and appends it to `bench/results/serve.jsonl`.
//!
//! ```text
//! cargo run --release -p remote --example abuse_test -- [--model smollm2|PATH] \
//!     [--clients 64] [--secs 60] [--out FILE]
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// What one call ended with.
enum Outcome {
    /// HTTP status and body.
    Answer(u16, String),
    /// We closed the connection on purpose.
    Abandoned,
    /// No (complete) answer: a failure of the server.
    Broken(String),
}

fn http(addr: SocketAddr, path: &str, body: &[u8], abandon_after: Option<Duration>) -> Outcome {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("connect: {e}")),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let (method, ctype) = if body.is_empty() {
        ("GET", "")
    } else {
        ("POST", "Content-Type: application/json\r\n")
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{ctype}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if let Err(e) = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
    {
        // A server may answer 413 and close before reading a huge body.
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        return parse(&out).unwrap_or_else(|| Outcome::Broken(format!("write: {e}")));
    }
    if let Some(d) = abandon_after {
        std::thread::sleep(d);
        return Outcome::Abandoned;
    }
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        return Outcome::Broken(format!("read: {e}"));
    }
    parse(&out).unwrap_or_else(|| Outcome::Broken(format!("no HTTP answer ({} bytes)", out.len())))
}

fn parse(out: &[u8]) -> Option<Outcome> {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Outcome::Answer(status, body.to_string()))
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[derive(Default)]
struct Tally {
    /// (kind, status or "abandoned"/"broken") -> count
    counts: BTreeMap<String, usize>,
    latencies: Vec<f64>,
    tokens: usize,
    problems: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = arg(&args, "--clients").map_or(Ok(64), |s| s.parse())?;
    let secs: f64 = arg(&args, "--secs").map_or(Ok(60.0), |s| s.parse())?;
    let out = arg(&args, "--out").unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/results/serve.jsonl"
        )
        .to_string()
    });
    let mut spec = arg(&args, "--model").unwrap_or_else(|| "smollm2".into());
    if spec == "smollm2" {
        spec = testdata::smollm2_gguf()
            .ok_or("SmolLM2 GGUF not available (scripts/fetch-smollm2.sh)")?
            .to_string_lossy()
            .into_owned();
    }
    let loaded = model::load(&spec, &model::LoadOptions::default())?;
    let opts = rzero_serve::ServeOptions {
        served_model_name: "abuse".into(),
        max_queued_samples: 256,
        request_timeout: Duration::from_secs(30),
        ..rzero_serve::ServeOptions::default()
    };
    let (max_prompt_bytes, max_body_bytes) = (opts.max_prompt_bytes, opts.max_body_bytes);
    let cfg = engine::EngineConfig {
        max_batch_size: rzero_serve::DEFAULT_MAX_BATCH_SIZE,
        ..engine::EngineConfig::default()
    };
    let sampler = std::sync::Arc::new(engine::LocalSampler::from_loaded(&loaded, cfg)?);
    let server = rzero_serve::spawn(sampler, "127.0.0.1:0".parse()?, opts)?;
    let addr = server.addr();
    drop(loaded);
    let rss_start = rss_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let big_prompt = "lorem ipsum ".repeat(max_prompt_bytes / 12 + 100);
    let huge_body = {
        let mut b = format!("{{\"prompt\": \"{}", "a".repeat(max_body_bytes + 1024)).into_bytes();
        b.extend_from_slice(b"\"}");
        Arc::new(b)
    };
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, tally, sent, big_prompt, huge_body) = (
                stop.clone(),
                tally.clone(),
                sent.clone(),
                big_prompt.clone(),
                huge_body.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let r = rng.below(100);
                    let seed = (c as u64) << 32 | k;
                    let (kind, path, body, abandon): (&str, &str, Vec<u8>, Option<Duration>) =
                        match r {
                            0..=44 => (
                                "normal",
                                "/v1/completions",
                                json!({"model": "abuse", "prompt": format!("Question {c}.{k}: what is {c} plus {k}? Answer:"),
                                       "max_tokens": 8 + rng.below(25), "ignore_eos": true, "seed": seed})
                                .to_string()
                                .into_bytes(),
                                None,
                            ),
                            45..=54 => (
                                "n4",
                                "/v1/completions",
                                json!({"prompt": format!("{k} + {c} ="), "n": 4, "max_tokens": 16, "seed": seed})
                                    .to_string()
                                    .into_bytes(),
                                None,
                            ),
                            55..=62 => (
                                "chat",
                                "/v1/chat/completions",
                                json!({"messages": [{"role": "user", "content": format!("Say {k}.")}], "max_tokens": 12, "seed": seed})
                                    .to_string()
                                    .into_bytes(),
                                None,
                            ),
                            63..=69 => (
                                "big_prompt",
                                "/v1/completions",
                                json!({"prompt": big_prompt, "max_tokens": 4}).to_string().into_bytes(),
                                None,
                            ),
                            70..=72 => ("huge_body", "/v1/completions", huge_body.to_vec(), None),
                            73..=79 => (
                                "too_many_tokens",
                                "/v1/completions",
                                json!({"prompt": "hi", "n": 1024, "max_tokens": 8192}).to_string().into_bytes(),
                                None,
                            ),
                            80..=84 => (
                                "malformed",
                                "/v1/completions",
                                b"{\"prompt\": [1, 2, \"x\"], \"n\": -1".to_vec(),
                                None,
                            ),
                            85..=89 => (
                                "bad_params",
                                "/v1/completions",
                                json!({"prompt": [[99999999]], "temperature": -1, "stream": true}).to_string().into_bytes(),
                                None,
                            ),
                            _ => (
                                "disconnect",
                                "/v1/completions",
                                json!({"prompt": "Count to one hundred:", "n": 8, "max_tokens": 200, "ignore_eos": true})
                                    .to_string()
                                    .into_bytes(),
                                Some(Duration::from_millis(50 + rng.below(400))),
                            ),
                        };
                    sent.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let o = http(addr, path, &body, abandon);
                    let secs = t.elapsed().as_secs_f64();
                    let mut tl = tally.lock().unwrap();
                    let key = match &o {
                        Outcome::Answer(st, b) => {
                            let v: Value = serde_json::from_str(b).unwrap_or(Value::Null);
                            if *st == 200 {
                                tl.latencies.push(secs);
                                tl.tokens += v["usage"]["completion_tokens"].as_u64().unwrap_or(0) as usize;
                            } else if !(400..600).contains(st)
                                || !v["error"]["message"].is_string()
                            {
                                tl.problems.push(format!("{kind}: HTTP {st} {b:.200}"));
                            }
                            format!("{kind} {st}")
                        }
                        Outcome::Abandoned => format!("{kind} abandoned"),
                        Outcome::Broken(e) => {
                            tl.problems.push(format!("{kind}: {e}"));
                            format!("{kind} broken")
                        }
                    };
                    *tl.counts.entry(key).or_default() += 1;
                }
            })
        })
        .collect();

    // /health every 100 ms, and the resident memory.
    let mut health = Vec::new();
    let mut health_bad = 0usize;
    let mut rss_max = rss_start;
    let mut rss_trace = Vec::new();
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        match http(addr, "/health", b"", None) {
            Outcome::Answer(200, _) => {}
            _ => health_bad += 1,
        }
        health.push(t.elapsed().as_secs_f64());
        let rss = rss_bytes();
        rss_max = rss_max.max(rss);
        if health.len() % 50 == 0 {
            rss_trace.push(rss / (1 << 20));
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = server.stats();
    let tl = tally.lock().unwrap();
    let mut lat = tl.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    health.sort_by(f64::total_cmp);
    let line = json!({
        "bench": "serve_abuse",
        "model": spec,
        "clients": clients,
        "elapsed_s": elapsed,
        "requests_sent": sent.load(Ordering::Relaxed),
        "ok_requests": lat.len(),
        "latency_p50_s": pct(&lat, 0.5),
        "latency_p99_s": pct(&lat, 0.99),
        "generated_tokens": tl.tokens,
        "tokens_per_s": tl.tokens as f64 / elapsed,
        "outcomes": tl.counts,
        "problems": tl.problems.len(),
        "first_problem": tl.problems.first(),
        "health_checks": health.len(),
        "health_failures": health_bad,
        "health_p99_ms": pct(&health, 0.99) * 1e3,
        "health_max_ms": health.last().copied().unwrap_or(f64::NAN) * 1e3,
        "rss_start_mib": rss_start / (1 << 20),
        "rss_max_mib": rss_max / (1 << 20),
        "rss_every_5s_mib": rss_trace,
        "server_cancelled": stats.cancelled.load(Ordering::Relaxed),
        "server_rejected_429": stats.rejected.load(Ordering::Relaxed),
        "server_peak_running": stats.peak_running.load(Ordering::Relaxed),
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
    let mut failures = Vec::new();
    if !tl.problems.is_empty() {
        failures.push(format!("{} unclear outcomes", tl.problems.len()));
    }
    if health_bad > 0 || health.last().is_some_and(|&h| h >= 0.1) {
        failures.push("/health failed or took 100 ms or more".to_string());
    }
    if lat.is_empty() {
        failures.push("no request succeeded".to_string());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}
