//! `rzero bench train`: GRPO training throughput (forward + backward + AdamW, including the
//! reference policy's forward for the KL) in tokens/s, and the process's peak RSS.
//!
//! The batch is synthetic: `--batch` sequences of `--seq` tokens (prompt = seq/8 tokens,
//! the rest response), in groups of 4 with distinct rewards, random token ids.
//!
//! `--lora-rank r` trains LoRA adapters on every projection instead of the full weights;
//! `--recompute` turns activation recomputation on. Peak RSS is the process's high-water
//! mark, so compare settings in separate runs. On a GPU the row also has the device memory
//! in use (`gpu_mem_used_bytes`: the most seen during the measured steps, from the driver).
//! `--dtype bf16` trains with bf16 compute (f32 master weights and AdamW state);
//! `--matmul-precision bf16` keeps f32 compute with bf16 operands in the matrix products.
//!
//! `--random-init CONFIG.json` trains a model of that shape with random weights.

use std::time::Instant;

use anyhow::Context;
use train::{Group, Response, Trainer};

/// Arguments of `rzero bench train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: super::bench::ModelArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence (prompt + response).
    #[arg(long, default_value_t = 512)]
    pub seq: usize,
    /// Sequences per forward/backward pass.
    #[arg(long, default_value_t = 1)]
    pub micro_batch: usize,
    #[command(flatten)]
    pub grpo: super::bench::GrpoArgs,
}

/// Peak resident set size in bytes (`VmHWM`), if the platform reports it.
fn peak_rss() -> Option<u64> {
    model::device::mem_report(&candle_core::Device::Cpu).rss_peak_bytes
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch >= 2 && args.seq >= 16,
        "--batch >= 2 and --seq >= 16"
    );
    let (config, weights, label) = match &args.model.random_init {
        Some(c) => {
            let (config, weights) = super::bench::random_init(c)?;
            (config, weights, c.display().to_string())
        }
        None => {
            let spec = &args.model.model;
            let loaded = model::load(spec, &model::LoadOptions::default())
                .with_context(|| format!("loading {spec}"))?;
            (loaded.config, loaded.weights, spec.clone())
        }
    };
    let mut cfg = args.grpo.grpo_config(args.micro_batch)?;
    // every sequence computed in full, as the peers do (`bench shared-prompts` measures sharing)
    cfg.optim.shared_prompts = false;
    let params: usize = weights
        .iter()
        .filter(|(n, _)| !(config.tie_word_embeddings && n.as_str() == "lm_head.weight"))
        .map(|(_, t)| t.elem_count())
        .sum();
    let dev = model::device::default_device();
    let mut trainer = Trainer::new(cfg, &config, &weights, None, &dev)?;
    drop(weights);
    let groups = synthetic_groups(&args, config.vocab_size as u64);
    let tokens: usize = groups.iter().map(|g| g.responses.len() * args.seq).sum();
    let timing = measure(&mut trainer, &groups, args.grpo.steps)?;
    let mut out = serde_json::json!({
        "bench": "train",
        "model": label,
        "params": params,
        "trainable_params": trainer.layout().total(),
        "lora_rank": args.grpo.lora_rank,
        "recompute": args.grpo.recompute,
        "matmul_precision": args.grpo.matmul_precision.name(),
        "matmul_on_amx": model::ops::bf16_products_on_amx(),
        "batch": args.batch,
        "seq": args.seq,
        "micro_batch": args.micro_batch,
        "kl_coef": args.grpo.kl_coef,
        "tokens_per_step": tokens,
        "step_s": timing.mean,
        "warmup_step_s": timing.warm,
        "tokens_per_s": tokens as f64 / timing.mean,
        // CPU seconds (all threads) per token of the measured steps: comparable under load,
        // where the wall-clock figures are not; and the load when the run ended.
        "cpu_s_per_token": timing.cpu_mean.map(|c| c / tokens as f64),
        "load_avg_1m": super::bench_cluster::load_average(),
        "peak_rss_bytes": peak_rss(),
        // The first (warm-up) step's loss and gradient norm: the same on every device up to
        // rounding (scripts/gpu-check.sh compares CUDA with the CPU).
        "first_step_loss": timing.first.grad.loss,
        "first_step_grad_norm": timing.first.update.grad_norm,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    // The compute dtype (master weights and AdamW state are f32 either way).
    super::bench::device_fields(&mut out, trainer.compute_dtype());
    if let Some(used) = timing.gpu_mem {
        out["gpu_mem_used_bytes"] = serde_json::json!(used);
    }
    if args.grpo.json {
        println!("{out}");
    } else {
        println!(
            "train: {} params ({} trained{}{}{}), {}x{} tokens, micro-batch {}: {:.2} s/step, {:.1} tokens/s, peak RSS {:.2} GiB",
            params,
            trainer.layout().total(),
            if args.grpo.lora_rank > 0 { format!(", LoRA r={}", args.grpo.lora_rank) } else { String::new() },
            if args.grpo.recompute { ", recompute" } else { "" },
            if args.grpo.matmul_precision == model::ops::MatmulPrecision::Bf16 { ", bf16 products" } else { "" },
            args.batch,
            args.seq,
            args.micro_batch,
            timing.mean,
            tokens as f64 / timing.mean,
            peak_rss().unwrap_or(0) as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

/// The synthetic batch: `--batch` sequences of `--seq` tokens (prompt seq/8), in groups of
/// up to 4 with distinct rewards, deterministic pseudo-random ids below `vocab`.
fn synthetic_groups(args: &Args, vocab: u64) -> Vec<Group> {
    let plen = (args.seq / 8).max(1);
    let rlen = args.seq - plen;
    let mut next = super::bench::id_stream(vocab);
    let g = 4.min(args.batch);
    let mut groups = Vec::new();
    let mut left = args.batch;
    while left > 0 {
        let n = g.min(left).max(2);
        groups.push(Group {
            prompt: (0..plen).map(|_| next()).collect(),
            responses: (0..n)
                .map(|i| Response {
                    ids: (0..rlen).map(|_| next()).collect(),
                    reward: i as f32,
                    ..Default::default()
                })
                .collect(),
        });
        left = left.saturating_sub(n);
    }
    groups
}

/// The timings of a run: the warm-up step, the mean of the measured ones (the warm-up's
/// when there are none), and the most device memory seen.
struct Timing {
    first: train::StepMetrics,
    warm: f64,
    mean: f64,
    /// CPU seconds of the process per measured step (the warm-up's when there are none).
    cpu_mean: Option<f64>,
    gpu_mem: Option<u64>,
}

/// One warm-up step, then `steps` measured ones.
fn measure(trainer: &mut Trainer, groups: &[Group], steps: usize) -> anyhow::Result<Timing> {
    let cpu = super::bench_cluster::cpu_seconds;
    let (t0, c0) = (Instant::now(), cpu());
    let first = trainer.step(groups)?;
    let warm = t0.elapsed().as_secs_f64();
    let c1 = cpu();
    let mut times = Vec::new();
    let mut gpu_mem = first.mem_device_bytes;
    for _ in 0..steps {
        let t = Instant::now();
        let m = trainer.step(groups)?;
        times.push(t.elapsed().as_secs_f64());
        gpu_mem = gpu_mem.max(m.mem_device_bytes);
    }
    let cpu_mean = match (c0, c1, cpu()) {
        (Some(a), Some(b), _) if times.is_empty() => Some(b - a),
        (_, Some(b), Some(z)) if !times.is_empty() => Some((z - b) / times.len() as f64),
        _ => None,
    };
    let mean = if times.is_empty() {
        warm
    } else {
        times.iter().sum::<f64>() / times.len() as f64
    };
    Ok(Timing {
        first,
        warm,
        mean,
        cpu_mean,
        gpu_mem,
    })
}
