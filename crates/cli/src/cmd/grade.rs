//! `rzero grade` (not implemented yet).

/// Arguments of `rzero grade`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero grade` is not implemented yet")
}
