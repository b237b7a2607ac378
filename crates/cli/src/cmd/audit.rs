//! `rzero audit` (not implemented yet).

/// Arguments of `rzero audit`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero audit` is not implemented yet")
}
