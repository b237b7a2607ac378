//! `rzero config`: print a full, commented configuration.

use anyhow::Context;

/// Arguments of `rzero config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Preset to print: paper (reference scale, GPU), demo (SmolLM2-135M on 2 CPU cores), tiny (tests).
    #[arg(long, default_value = "paper")]
    preset: String,
    /// Layer a config file over the preset before printing.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Overrides `key=value` (e.g. `--set solver.optim.lr=2e-6`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = match &args.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let cfg = rzero::Config::resolve(&args.preset, text.as_deref(), &args.overrides)?;
    print!("{}", cfg.to_commented_toml());
    Ok(())
}
