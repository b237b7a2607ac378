//! `rzero bench train` (not implemented yet).

/// Arguments of `rzero bench train`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero bench train` is not implemented yet")
}
