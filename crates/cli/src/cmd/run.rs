//! `rzero run` (not implemented yet).

/// Arguments of `rzero run`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _quiet: bool) -> anyhow::Result<()> {
    anyhow::bail!("`rzero run` is not implemented yet")
}
