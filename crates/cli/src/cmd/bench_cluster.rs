//! `rzero bench cluster` (not implemented yet).

/// Arguments of `rzero bench cluster`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero bench cluster` is not implemented yet")
}
