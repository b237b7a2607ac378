//! `rzero audit`: how accurate are R-Zero's majority-vote pseudo-labels?
//!
//! Benchmark questions are treated as if the Challenger had written them: the model answers
//! each `--m` times with the dataset stage's sampling, the majority answer becomes the label
//! exactly as in dataset construction, and the labels are checked against the known answers,
//! overall and per p̂ band (below the kept band, the kept band, above it). Writes
//! `audit.json` and the resumable `audit_responses.jsonl` into `--out`.

use std::path::PathBuf;

use anyhow::Context;

use super::eval::{default_out, load_generator, progress_bar, EngineArgs};

/// Arguments of `rzero audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model (the Solver): HF folder, .gguf file, hub id in the local cache, or `smollm2`.
    #[arg(long)]
    pub model: String,
    /// Comma-separated benchmarks (names or JSONL paths), as for `rzero eval`.
    #[arg(long, default_value = "math500")]
    pub bench: String,
    /// Only the first N problems of each benchmark.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Samples per question (the method's m).
    #[arg(long, default_value_t = 10)]
    pub m: usize,
    /// Sampling temperature (the dataset stage's 1.0).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Top-p (1.0).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Top-k (40; 0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Most new tokens per response.
    #[arg(long, default_value_t = 2048)]
    pub max_new_tokens: usize,
    /// Lowest kept p̂ (inclusive).
    #[arg(long, default_value_t = 0.3)]
    pub keep_low: f64,
    /// Highest kept p̂ (inclusive).
    #[arg(long, default_value_t = 0.8)]
    pub keep_high: f64,
    /// Do not apply the reference's content filter ("box"/"证明" in questions, "text" in labels).
    #[arg(long)]
    pub no_content_filter: bool,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (resumed when it holds an earlier audit with the same options).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Questions per generation call.
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let benches = eval::Benchmark::load_list(&args.bench)?;
    anyhow::ensure!(!benches.is_empty(), "no benchmark given");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out("audit", &args.model));
    let opts = eval::AuditOptions {
        model: args.model.clone(),
        limit: args.limit,
        m: args.m,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: (args.top_k > 0).then_some(args.top_k),
        max_new_tokens: args.max_new_tokens,
        filter: eval::grading::FilterBand {
            low: args.keep_low,
            high: args.keep_high,
            reference_content_filter: !args.no_content_filter,
        },
        batch_size: args.chunk,
        seed: args.seed,
        force_answer: super::eval::describe_force(&args.engine.force.option()?),
    };
    let bar = progress_bar();
    let mut gen = load_generator(&args.model, &args.engine, bar.clone())?;
    let report = eval::run_audit(&mut gen, &benches, &opts, &out, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_prefix(p.bench.clone());
    })
    .with_context(|| format!("auditing into {}", out.display()))?;
    bar.finish_and_clear();
    print!("{}", eval::audit::format_audit(&report));
    println!("audit: {}", out.join("audit.json").display());
    Ok(())
}
