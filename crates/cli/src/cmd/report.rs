//! `rzero report RUN_DIR`: one self-contained HTML page (inline SVG, no JavaScript) with the
//! run's training curves, p̂ histograms, kept counts, label accuracy by band, benchmark
//! accuracy per iteration, a sample of generated questions and the configuration. Works on
//! a run in progress (missing parts say "not yet").

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `rzero report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run directory (written by `rzero run`).
    pub run_dir: PathBuf,
    /// Output HTML file (default RUN_DIR/report.html); written atomically.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join("report.html"));
    eval::report::write(&args.run_dir, &out)
        .with_context(|| format!("rendering the report of {}", args.run_dir.display()))?;
    println!("{}", out.display());
    Ok(())
}
