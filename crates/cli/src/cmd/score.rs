//! `rzero score` (not implemented yet).

/// Arguments of `rzero score`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero score` is not implemented yet")
}
