//! The `spate` binary: parses flags and calls into the library crates.

mod commands;

use clap::{Parser, Subcommand};

/// Spate: a Kafka-compatible data streaming platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "spate", version = spate_server::build_info::VERSION_LINE, about)]
struct Cli {
    /// Connection profile to use [default: the current one; see `spate profile`].
    #[arg(long, global = true, env = "SPATE_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Spate server (Kafka protocol, schema registry, HTTP admin and health).
    Serve(Box<commands::serve::ServeArgs>),
    /// Create, list, describe, alter and delete topics.
    Topic(commands::topic::TopicArgs),
    /// Produce lines (text or JSON) from stdin to a topic, schema'd or not.
    Produce(commands::produce::ProduceArgs),
    /// Consume records from a topic, alone or as a member of a consumer group.
    Consume(commands::consume::ConsumeArgs),
    /// List, describe and delete consumer groups, and reset their offsets.
    Group(commands::group::GroupArgs),
    /// Register, get, list, check and delete schemas; compatibility, modes, contexts.
    Schema(commands::schema::SchemaArgs),
    /// Cluster info and health, broker configs, transactions.
    Cluster(commands::cluster::ClusterArgs),
    /// Create, use, list and delete connection profiles (brokers, registry, security).
    Profile(commands::profile::ProfileArgs),
    /// Run a Connect worker (Kafka Connect's REST API and built-in connectors).
    Connect(commands::connect::ConnectArgs),
    /// Run Flink SQL: an interactive shell, `-e`/`-f`, or a SQL worker.
    Sql(commands::sql::SqlArgs),
    /// AI: indexes that follow topics (create, list, describe, delete, query).
    Ai(commands::ai::AiArgs),
    /// Create, delete and list SCRAM users (AlterUserScramCredentials).
    User(commands::user::UserArgs),
    /// Add, list and remove ACLs (like kafka-acls).
    Acl(commands::acl::AclArgs),
    /// Set, list and remove client quotas (byte rates, request time, connection rates).
    Quota(commands::quota::QuotaArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::profile::select(cli.profile);
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(*args),
        Command::Topic(args) => commands::topic::run(args),
        Command::Produce(args) => commands::produce::run(args),
        Command::Consume(args) => commands::consume::run(args),
        Command::Group(args) => commands::group::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Cluster(args) => commands::cluster::run(args),
        Command::Profile(args) => commands::profile::run(args),
        Command::Connect(args) => commands::connect::run(args),
        Command::Sql(args) => commands::sql::run(args),
        Command::Ai(args) => commands::ai::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Acl(args) => commands::acl::run(args),
        Command::Quota(args) => commands::quota::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each said once: library errors often put their
/// source in their own message ("cannot listen on ...: Address in use"), and anyhow's `{:#}`
/// would then print the OS error twice.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_already_in_the_message_is_printed_once() {
        let os = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let inner = format!("cannot listen on 0.0.0.0:9092: {os}");
        let err = anyhow::Error::new(os).context(inner.clone());
        assert_eq!(error_text(&err), inner);
        let err = anyhow::anyhow!("disk full").context("cannot write");
        assert_eq!(error_text(&err), "cannot write: disk full");
    }
}
