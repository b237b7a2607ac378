//! `rzero report` (not implemented yet).

/// Arguments of `rzero report`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero report` is not implemented yet")
}
