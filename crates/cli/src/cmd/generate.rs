//! `rzero generate` (not implemented yet).

/// Arguments of `rzero generate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero generate` is not implemented yet")
}
