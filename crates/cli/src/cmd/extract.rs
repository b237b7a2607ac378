//! `rzero extract` (not implemented yet).

/// Arguments of `rzero extract`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero extract` is not implemented yet")
}
