//! `spate consume` (stub; being written).

/// Arguments of `spate consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {}

/// Runs `spate consume`.
pub fn run(_args: ConsumeArgs) -> anyhow::Result<()> {
    anyhow::bail!("spate consume is not built yet")
}
