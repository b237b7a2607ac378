//! `rzero serve` (not implemented yet).

/// Arguments of `rzero serve`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero serve` is not implemented yet")
}
