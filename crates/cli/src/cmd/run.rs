//! `rzero run`: the full R-Zero loop, resumable.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `rzero run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Built-in preset: paper (reference scale, GPU), demo (SmolLM2-135M on 2 CPU cores),
    /// tiny (the tests' size).
    #[arg(long, default_value = "demo")]
    preset: String,
    /// TOML config layered over the preset (see `rzero config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Base model: HF folder, .gguf file, hub id, or `smollm2` (the embedded default).
    #[arg(long)]
    model: Option<String>,
    /// Number of iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Master seed (default: the preset's, recorded in the run's config.toml).
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory; rerunning the same command on it resumes.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Overrides `key=value`, e.g. `--set solver.optim.lr=2e-6` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Skip benchmark evaluation and the label audit.
    #[arg(long)]
    no_eval: bool,
}

pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    let text = match &args.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let mut overrides = args.overrides.clone();
    if let Some(m) = &args.model {
        overrides.push(format!("model={}", toml_string(m)));
    }
    if let Some(i) = args.iterations {
        overrides.push(format!("iterations={i}"));
    }
    if let Some(s) = args.seed {
        overrides.push(format!("seed={s}"));
    }
    let mut cfg = rzero::Config::resolve(&args.preset, text.as_deref(), &overrides)?;
    if args.no_eval {
        cfg.eval.benchmarks.clear();
        cfg.audit.benchmarks.clear();
    }
    let model_path = super::resolve_model(&cfg.model)?;
    // Nothing is written to --out before the inputs are checked: `rzero::run::run` checks the
    // model, the config and the remote settings itself; the evaluation hook is ours.
    rzero::evaluate::check_eval(&cfg)?;

    let bar: std::cell::RefCell<Option<ProgressBar>> = std::cell::RefCell::new(None);
    let mut on_event = |ev: rzero::run::Event| match ev {
        rzero::run::Event::StageStart { iter, stage, total } => {
            if quiet {
                return;
            }
            let pb = ProgressBar::new(total as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix:>22} [{bar:30}] {pos}/{len} {msg} (elapsed {elapsed}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb.set_prefix(if iter == 0 {
                format!("base {stage}")
            } else {
                format!("iter {iter} {stage}")
            });
            *bar.borrow_mut() = Some(pb);
        }
        rzero::run::Event::StageProgress { done } => {
            if let Some(pb) = bar.borrow().as_ref() {
                pb.set_position(done as u64);
            }
        }
        rzero::run::Event::StageEnd { summary } => {
            if let Some(pb) = bar.borrow_mut().take() {
                pb.finish_and_clear();
            }
            if !quiet {
                eprintln!("{summary}");
            }
        }
    };
    let mut eval_hook = rzero::evaluate::eval_hook(&cfg);
    rzero::run::run(rzero::run::RunOptions {
        config: cfg,
        out: args.out.clone(),
        model_path,
        on_event: &mut on_event,
        eval: eval_hook
            .as_mut()
            .map(|f| f as &mut dyn FnMut(&str, &rzero::rundir::RunDir, usize) -> rzero::Result<()>),
    })
    .with_context(|| format!("run in {}", args.out.display()))?;
    let out = args.out.display();
    println!("done: metrics in {out}/metrics.jsonl, datasets in {out}/iter_*/dataset.jsonl, checkpoints in {out}/iter_*/{{challenger,solver}}");
    println!("report: rzero report {out} --out {out}/report.html");
    Ok(())
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}
