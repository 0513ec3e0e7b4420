//! `spate quota`: set, list and remove client quotas with AlterClientQuotas and
//! DescribeClientQuotas (KIP-546), like `kafka-configs --entity-type users|clients|ips`.
//! Works against Spate and any Kafka cluster.
//!
//! An entity is chosen with `--user`/`--user-default`, `--client-id`/`--client-default` (alone
//! or together) or `--ip`/`--ip-default`. Keys keep Kafka's names: `producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage` for users and client ids,
//! `connection_creation_rate` for addresses. The broker checks keys and values.

use anyhow::{Context, bail};
use spate_client::admin::{QuotaAlteration, QuotaEntity, QuotaMatch};

use super::client_args::{ClientArgs, parse_name_value, runtime};
use super::group::{print, table};

/// Arguments of `spate quota`.
#[derive(Debug, clap::Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: QuotaCommand,
}

#[derive(Debug, clap::Subcommand)]
enum QuotaCommand {
    /// Set quotas of an entity, e.g. `--user alice producer_byte_rate=1048576`.
    Set(SetArgs),
    /// List quotas, of every entity or of those matching the entity flags given.
    List(ListArgs),
    /// Remove quotas of an entity, e.g. `--user alice producer_byte_rate`.
    Remove(RemoveArgs),
}

/// Whose quotas. In `list`, each flag given narrows the listing.
#[derive(Debug, Clone, Default, clap::Args)]
struct EntityArgs {
    /// A user (the principal's name, e.g. `alice` for `User:alice`).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default of all users (`<default>`).
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_default")]
    client_id: Option<String>,
    /// The default of all client ids (`<default>`).
    #[arg(long)]
    client_default: bool,
    /// A client address (connection_creation_rate).
    #[arg(long, conflicts_with = "ip_default")]
    ip: Option<String>,
    /// The default of all addresses (`<default>`).
    #[arg(long)]
    ip_default: bool,
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Quotas to set, KEY=VALUE (repeatable).
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_quota)]
    quotas: Vec<(String, f64)>,
    /// Have the broker check the change without making it.
    #[arg(long)]
    validate_only: bool,
}

#[derive(Debug, clap::Args)]
struct RemoveArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Quota keys to remove (repeatable).
    #[arg(required = true, value_name = "KEY")]
    keys: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Only entities of exactly the types given (e.g. `--user alice` without its client ids).
    #[arg(long)]
    strict: bool,
}

fn parse_quota(text: &str) -> Result<(String, f64), String> {
    let (key, value) = parse_name_value(text)?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("quota {key}: {value:?} is not a number"))?;
    Ok((key, value))
}

impl EntityArgs {
    /// (type, name) pairs given, `None` names for the defaults.
    fn components(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for (entity_type, name, default) in [
            ("user", &self.user, self.user_default),
            ("client-id", &self.client_id, self.client_default),
            ("ip", &self.ip, self.ip_default),
        ] {
            match (name, default) {
                (Some(name), _) => out.push((entity_type.to_string(), Some(name.clone()))),
                (None, true) => out.push((entity_type.to_string(), None)),
                (None, false) => {}
            }
        }
        out
    }

    /// The entity to change; at least one flag is needed.
    fn entity(&self) -> anyhow::Result<QuotaEntity> {
        let components = self.components();
        if components.is_empty() {
            bail!(
                "name the entity with --user, --user-default, --client-id, --client-default, --ip or --ip-default"
            );
        }
        Ok(QuotaEntity { components })
    }

    fn filter(&self) -> Vec<(String, QuotaMatch)> {
        self.components()
            .into_iter()
            .map(|(entity_type, name)| {
                let matching = match name {
                    Some(name) => QuotaMatch::Exact(name),
                    None => QuotaMatch::Default,
                };
                (entity_type, matching)
            })
            .collect()
    }
}

/// A quota value as Kafka's tools print it: whole numbers without a fraction.
fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

fn name_of(entity: &QuotaEntity, entity_type: &str) -> String {
    match entity.components.iter().find(|(t, _)| t == entity_type) {
        None => "-".to_string(),
        Some((_, None)) => "<default>".to_string(),
        Some((_, Some(name))) => name.clone(),
    }
}

/// Runs `spate quota`.
pub fn run(args: QuotaArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = args.client.connect().await?;
        match args.command {
            QuotaCommand::Set(a) => {
                let alteration = QuotaAlteration {
                    entity: a.entity.entity()?,
                    ops: a.quotas.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                };
                client
                    .alter_client_quotas(&[alteration], a.validate_only)
                    .await?;
            }
            QuotaCommand::Remove(a) => {
                let alteration = QuotaAlteration {
                    entity: a.entity.entity()?,
                    ops: a.keys.into_iter().map(|k| (k, None)).collect(),
                };
                client.alter_client_quotas(&[alteration], false).await?;
            }
            QuotaCommand::List(a) => {
                let quotas = client
                    .describe_client_quotas(&a.entity.filter(), a.strict)
                    .await
                    .context("listing client quotas")?;
                let mut rows = Vec::new();
                for (entity, values) in &quotas {
                    for (key, value) in values {
                        rows.push(vec![
                            name_of(entity, "user"),
                            name_of(entity, "client-id"),
                            name_of(entity, "ip"),
                            key.clone(),
                            format_value(*value),
                        ]);
                    }
                }
                print(&table(&["USER", "CLIENT-ID", "IP", "KEY", "VALUE"], &rows))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_print_as_kafka_shows_them() {
        assert_eq!(
            parse_quota("producer_byte_rate=1048576"),
            Ok(("producer_byte_rate".to_string(), 1_048_576.0))
        );
        assert!(parse_quota("producer_byte_rate=fast").is_err());
        assert!(parse_quota("producer_byte_rate").is_err());
        assert_eq!(format_value(1_048_576.0), "1048576");
        assert_eq!(format_value(12.5), "12.5");
    }

    #[test]
    fn entity_flags_make_entities_and_filters() {
        let args = EntityArgs {
            user: Some("alice".into()),
            client_default: true,
            ..Default::default()
        };
        assert_eq!(
            args.entity().expect("entity").components,
            vec![
                ("user".to_string(), Some("alice".to_string())),
                ("client-id".to_string(), None)
            ]
        );
        assert_eq!(
            args.filter(),
            vec![
                ("user".to_string(), QuotaMatch::Exact("alice".into())),
                ("client-id".to_string(), QuotaMatch::Default)
            ]
        );
        assert!(EntityArgs::default().entity().is_err());
        assert!(EntityArgs::default().filter().is_empty());
    }
}
