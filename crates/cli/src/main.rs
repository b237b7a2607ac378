//! The `rzero` binary: argument parsing, logging, progress bars and glue.
//!
//! Every subcommand lives in `cmd/<name>.rs` with an `Args` struct and a
//! `run(args) -> anyhow::Result<()>`; the library crates do the work.

mod cmd;
mod io;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// R-Zero in Rust: a Challenger writes math problems, a Solver learns to solve them,
/// with no human-written data.
#[derive(Parser, Debug)]
#[command(name = "rzero", version, about, long_about = None)]
struct Cli {
    /// Only print warnings and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Where models run: `cpu` (packed AVX kernels), `cpu-generic` (candle ops on the CPU:
    /// the code path a GPU runs), `cuda` / `cuda:N`, or `auto` (cuda when this build has it
    /// and a GPU answers, else cpu).
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// Weight dtype of loaded models: f32, bf16 (inference on a GPU) or f16. Training keeps
    /// f32 master weights and AdamW state whatever this is; `bf16` also makes `rzero grpo`
    /// and `bench train` compute in bf16 (`grpo.compute_dtype`).
    #[arg(long, global = true, default_value = "f32")]
    dtype: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the full R-Zero loop (Challenger -> dataset -> Solver), resumable.
    Run(cmd::run::Args),
    /// Print a full, commented configuration for a preset.
    Config(cmd::config::Args),
    /// Generate completions for prompts (JSONL in, JSONL out).
    Generate(cmd::generate::Args),
    /// Per-token log-probabilities of completions given prompts.
    Score(cmd::score::Args),
    /// Grade answers against gold answers (JSONL in, JSONL out).
    Grade(cmd::grade::Args),
    /// Extract the final \boxed{} answer from responses (JSONL in, JSONL out).
    Extract(cmd::extract::Args),
    /// Cluster questions by BLEU distance and compute R-Zero's repetition penalty.
    Cluster(cmd::cluster::Args),
    /// GRPO training of a Solver on question/answer JSONL.
    Grpo(cmd::grpo::Args),
    /// Evaluate a model on math benchmarks.
    Eval(cmd::eval::Args),
    /// Audit majority-vote pseudo-labels against benchmark answers.
    Audit(cmd::audit::Args),
    /// Render a self-contained HTML report of a run directory.
    Report(cmd::report::Args),
    /// Serve a model behind an OpenAI-compatible HTTP API.
    Serve(cmd::serve::Args),
    /// Download a model from the Hugging Face Hub into the cache; print its folder.
    Download(cmd::download::Args),
    /// Benchmarks that print figures (and JSON with --json).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    // Error messages are one line: candle attaches a captured backtrace to its errors (and
    // prints it inside their message) when RUST_BACKTRACE is set. RUST_LIB_BACKTRACE=0 stops
    // that capture and leaves panic backtraces to RUST_BACKTRACE; set it to 1 to get them.
    // Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // candle's CPU thread pool spins 25 000 times before a worker parks. Next to rzero's own
    // rayon threads (and on a shared machine) that spinning is CPU taken from the work:
    // `bench train` at 2 x 512 used about 12 % less CPU per token with 200
    // (bench/results/train.jsonl, "spin_limit"). An explicit setting wins.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "200");
    }
    // Large tensors reuse freed heap memory instead of fresh mappings (model::heap).
    model::heap::keep_freed_memory();
    let cli = Cli::parse();
    init_tracing(cli.quiet);
    // Downloads started by `--model <hub id>` draw the same bars as `rzero download`.
    let quiet = cli.quiet;
    model::hub::set_progress(move || Box::new(cmd::download::Bars::new(quiet)));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    let spec: model::DeviceSpec = cli.device.parse().context("--device")?;
    let (spec, _) = spec.activate().context("--device")?;
    model::device::set_default_dtype(model::device::parse_dtype(&cli.dtype).context("--dtype")?);
    tracing::debug!(device = %spec, dtype = %cli.dtype, "device");
    match cli.command {
        Command::Run(a) => cmd::run::run(a, cli.quiet),
        Command::Config(a) => cmd::config::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Score(a) => cmd::score::run(a),
        Command::Grade(a) => cmd::grade::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Cluster(a) => cmd::cluster::run(a),
        Command::Grpo(a) => cmd::grpo::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Download(a) => cmd::download::run(a, cli.quiet),
        Command::Bench(b) => cmd::bench::run(b),
    }
}

/// The error and its causes on one line, `a: b: c`, skipping a cause whose text the
/// message before it already ends with (library errors often print their source inline).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_tracing(quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("RZERO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
