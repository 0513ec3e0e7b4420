//! The `spate` binary: parses flags and calls into the library crates.

mod commands;

use clap::{Parser, Subcommand};

/// Spate: a Kafka-compatible data streaming platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "spate", version = spate_server::build_info::VERSION_LINE, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Spate server (Kafka protocol, schema registry, HTTP admin and health).
    Serve(Box<commands::serve::ServeArgs>),
    /// Create, list, describe, alter and delete topics.
    Topic(commands::topic::TopicArgs),
    /// Produce lines from stdin to a topic.
    Produce(commands::produce::ProduceArgs),
    /// Consume records from a topic.
    Consume(commands::consume::ConsumeArgs),
    /// List, describe and delete consumer groups, and reset their offsets.
    Group(commands::group::GroupArgs),
    /// Register, get, list, check and delete schemas, and set compatibility (schema registry).
    Schema(commands::schema::SchemaArgs),
    /// Create, delete and list SCRAM users (AlterUserScramCredentials).
    User(commands::user::UserArgs),
    /// Add, list and remove ACLs (like kafka-acls).
    Acl(commands::acl::AclArgs),
    /// Set, list and remove client quotas (byte rates, request time, connection rates).
    Quota(commands::quota::QuotaArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(*args),
        Command::Topic(args) => commands::topic::run(args),
        Command::Produce(args) => commands::produce::run(args),
        Command::Consume(args) => commands::consume::run(args),
        Command::Group(args) => commands::group::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Acl(args) => commands::acl::run(args),
        Command::Quota(args) => commands::quota::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
