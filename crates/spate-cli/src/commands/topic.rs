//! `spate topic` (stub; being written).

/// Arguments of `spate topic`.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {}

/// Runs `spate topic`.
pub fn run(_args: TopicArgs) -> anyhow::Result<()> {
    anyhow::bail!("spate topic is not built yet")
}
