//! `rzero eval` (not implemented yet).

/// Arguments of `rzero eval`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero eval` is not implemented yet")
}
