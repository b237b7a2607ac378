//! `rzero bench generate` (not implemented yet).

/// Arguments of `rzero bench generate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero bench generate` is not implemented yet")
}
