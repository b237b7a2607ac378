//! `rzero grpo` (not implemented yet).

/// Arguments of `rzero grpo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero grpo` is not implemented yet")
}
