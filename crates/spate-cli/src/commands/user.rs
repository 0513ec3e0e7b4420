//! `spate user`: create, delete and list SCRAM users with AlterUserScramCredentials and
//! DescribeUserScramCredentials (KIP-554), like `kafka-configs --alter --entity-type users`.
//! Works against Spate and any Kafka cluster.
//!
//! The password never leaves this process: it is salted and hashed here (PBKDF2 with a random
//! salt), and only the salted password goes to the broker. The password comes from
//! `--password` or, better, the first line of stdin (`--password-stdin`).

use std::io::BufRead;

use anyhow::{Context, bail};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::sasl::Mechanism;
use spate_auth::sasl::scram;

use super::client_args::{ClientArgs, runtime};

/// Arguments of `spate user`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Create a user, or change its password, for a SCRAM mechanism.
    Create(CreateArgs),
    /// Delete a user's credential for a SCRAM mechanism.
    Delete(DeleteArgs),
    /// List users with SCRAM credentials, their mechanisms and iterations.
    List,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScramMechanism {
    #[value(name = "SCRAM-SHA-256")]
    Sha256,
    #[value(name = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    fn mechanism(self) -> Mechanism {
        match self {
            ScramMechanism::Sha256 => Mechanism::ScramSha256,
            ScramMechanism::Sha512 => Mechanism::ScramSha512,
        }
    }

    fn id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// User name.
    name: String,
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
    /// SCRAM mechanism.
    #[arg(long, value_enum, default_value = "SCRAM-SHA-512")]
    mechanism: ScramMechanism,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    iterations: u32,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// User name.
    name: String,
    /// SCRAM mechanism.
    #[arg(long, value_enum, default_value = "SCRAM-SHA-512")]
    mechanism: ScramMechanism,
}

fn check(results: impl IntoIterator<Item = (String, i16, Option<String>)>) -> anyhow::Result<()> {
    for (user, code, message) in results {
        if code != 0 {
            let name = spate_client::error::KafkaError::from_code(code, message.as_deref())
                .map_or_else(|| format!("error {code}"), |e| e.name());
            bail!("{user}: {name}: {}", message.unwrap_or_default());
        }
    }
    Ok(())
}

/// Sends AlterUserScramCredentials and fails on the first user the broker refused.
async fn alter(
    connection: &spate_client::connection::Connection,
    request: AlterUserScramCredentialsRequest,
) -> anyhow::Result<()> {
    let response = connection.send(&request, 0).await?;
    check(response.results.into_iter().map(|r| {
        (
            r.user.to_string(),
            r.error_code,
            r.error_message.map(|m| m.to_string()),
        )
    }))
}

/// Runs `spate user`.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let password = match &args.command {
        UserCommand::Create(a) => Some(match (&a.password, a.password_stdin) {
            (Some(p), _) => p.clone(),
            (None, true) => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
            (None, false) => bail!("give the password with --password-stdin or --password"),
        }),
        _ => None,
    };
    runtime()?.block_on(async move {
        let client = args.client.connect().await?;
        let connection = client.any_broker().await?;
        match args.command {
            UserCommand::Create(a) => {
                let password = password.unwrap_or_default();
                let mut salt = vec![0u8; scram::SALT_BYTES];
                scram::random_bytes(&mut salt);
                let salted =
                    scram::salted_password(a.mechanism.mechanism(), &password, &salt, a.iterations)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(a.name.clone()))
                        .with_mechanism(a.mechanism.id())
                        .with_iterations(i32::try_from(a.iterations).unwrap_or(i32::MAX))
                        .with_salt(salt.into())
                        .with_salted_password(salted.into()),
                ]);
                alter(&connection, request).await?;
                println!("{}", a.name);
            }
            UserCommand::Delete(a) => {
                let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(a.name.clone()))
                        .with_mechanism(a.mechanism.id()),
                ]);
                alter(&connection, request).await?;
                println!("{}", a.name);
            }
            UserCommand::List => {
                let response = connection
                    .send(
                        &DescribeUserScramCredentialsRequest::default()
                            .with_users(None::<Vec<UserName>>),
                        0,
                    )
                    .await?;
                check([(
                    String::new(),
                    response.error_code,
                    response.error_message.map(|m| m.to_string()),
                )])?;
                for result in response.results {
                    let infos: Vec<String> = result
                        .credential_infos
                        .iter()
                        .map(|i| {
                            let name = match i.mechanism {
                                1 => "SCRAM-SHA-256",
                                2 => "SCRAM-SHA-512",
                                _ => "unknown",
                            };
                            format!("{name} (iterations {})", i.iterations)
                        })
                        .collect();
                    println!("{}\t{}", result.user, infos.join(", "));
                }
            }
        }
        Ok(())
    })
}
