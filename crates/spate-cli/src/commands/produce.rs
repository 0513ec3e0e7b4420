//! `spate produce` (stub; being written).

/// Arguments of `spate produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {}

/// Runs `spate produce`.
pub fn run(_args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::bail!("spate produce is not built yet")
}
