//! `rzero cluster` (not implemented yet).

/// Arguments of `rzero cluster`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero cluster` is not implemented yet")
}
