//! `rzero config` (not implemented yet).

/// Arguments of `rzero config`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rzero config` is not implemented yet")
}
