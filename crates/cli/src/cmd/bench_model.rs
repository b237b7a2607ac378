//! `rzero bench model` (not implemented yet).

/// Arguments of `rzero bench model`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero bench model` is not implemented yet")
}
