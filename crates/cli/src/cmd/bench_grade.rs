//! `rzero bench grade` (not implemented yet).

/// Arguments of `rzero bench grade`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero bench grade` is not implemented yet")
}
