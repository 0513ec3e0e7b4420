//! Users' SCRAM credentials: AlterUserScramCredentials and DescribeUserScramCredentials, kept
//! in the internal compacted topic `__user_credentials` and answered to the SASL mechanisms
//! through [`spate_auth::sasl::CredentialStore`].
//!
//! Clients send salted passwords, never passwords (KIP-554): the broker keeps the salt, the
//! iteration count and SCRAM's StoredKey and ServerKey derived from them. One record per user
//! and mechanism (key `{"user":..,"mechanism":..}`, value the credential as JSON, null once
//! deleted); a request's changes are appended as one batch and applied once durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use spate_auth::sasl::{CredentialStore, Mechanism, ScramCredential};

use crate::Broker;
use crate::authz::Caller;
use crate::error::BrokerError;

/// The internal topic credentials live in.
pub const CREDENTIALS_TOPIC: &str = "__user_credentials";

/// Credentials by user and mechanism.
#[derive(Debug, Default)]
pub struct Credentials {
    users: RwLock<BTreeMap<(String, MechanismKey), ScramCredential>>,
}

/// A SCRAM mechanism as Kafka numbers it (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
type MechanismKey = i8;

fn mechanism_of(id: i8) -> Option<Mechanism> {
    match id {
        1 => Some(Mechanism::ScramSha256),
        2 => Some(Mechanism::ScramSha512),
        _ => None,
    }
}

fn id_of(mechanism: Mechanism) -> i8 {
    match mechanism {
        Mechanism::ScramSha256 => 1,
        Mechanism::ScramSha512 => 2,
        _ => 0,
    }
}

#[derive(Serialize, Deserialize)]
struct Key {
    user: String,
    mechanism: String,
}

fn key(user: &str, mechanism: Mechanism) -> Vec<u8> {
    serde_json::to_vec(&Key {
        user: user.to_string(),
        mechanism: mechanism.name().to_string(),
    })
    .unwrap_or_default()
}

impl Credentials {
    /// Rebuilds the credentials from `__user_credentials` (created with the first user).
    /// Blocking.
    pub(crate) fn load(&self, broker: &Broker) -> Result<(), BrokerError> {
        {
            let mut users = self.users.write();
            broker.replay_state_topic(CREDENTIALS_TOPIC, |offset, key, value| {
                let Some(parsed) = key.and_then(|k| serde_json::from_slice::<Key>(k).ok()) else {
                    tracing::warn!(topic = CREDENTIALS_TOPIC, offset, "skipped a record without a readable key");
                    return;
                };
                let Some(mechanism) = Mechanism::parse(&parsed.mechanism) else {
                    return;
                };
                let slot = (parsed.user, id_of(mechanism));
                match value.map(serde_json::from_slice::<ScramCredential>) {
                    None => {
                        users.remove(&slot);
                    }
                    Some(Ok(credential)) => {
                        users.insert(slot, credential);
                    }
                    Some(Err(err)) => {
                        tracing::warn!(topic = CREDENTIALS_TOPIC, offset, error = %err, "skipped an unreadable credential");
                    }
                }
            })?;
        }
        Ok(())
    }
}

impl CredentialStore for Credentials {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.users
            .read()
            .get(&(user.to_string(), id_of(mechanism)))
            .cloned()
    }
}

fn result(user: &str, error: Option<(ResponseError, String)>) -> AlterUserScramCredentialsResult {
    let mut out = AlterUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()));
    if let Some((code, message)) = error {
        out.error_code = code.code();
        out.error_message = Some(StrBytes::from_string(message));
    }
    out
}

impl Broker {
    /// The credential store the SASL mechanisms read.
    pub fn credential_store(&self) -> Arc<dyn CredentialStore + Send + Sync> {
        Arc::clone(&self.credentials) as _
    }

    pub(crate) async fn alter_user_scram_credentials(
        self: &Arc<Self>,
        req: AlterUserScramCredentialsRequest,
        caller: &Caller,
    ) -> AlterUserScramCredentialsResponse {
        let mut errors: BTreeMap<String, (ResponseError, String)> = BTreeMap::new();
        // Each user once, in request order, with how often the request names it.
        let mut order: Vec<String> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for name in req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
        {
            if !seen.contains_key(&name) {
                order.push(name.clone());
            }
            *seen.entry(name).or_default() += 1;
        }
        let unknown_mechanism = |id: i8| {
            (
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {id}"),
            )
        };
        let mut changes: Vec<(String, Mechanism, Option<ScramCredential>)> = Vec::new();
        for deletion in &req.deletions {
            let user = deletion.name.to_string();
            let Some(mechanism) = mechanism_of(deletion.mechanism) else {
                errors.insert(user, unknown_mechanism(deletion.mechanism));
                continue;
            };
            if self.credentials.scram(&user, mechanism).is_none() {
                errors.insert(
                    user.clone(),
                    (
                        ResponseError::ResourceNotFound,
                        format!(
                            "Attempt to delete a user credential that does not exist: {user} {}",
                            mechanism.name()
                        ),
                    ),
                );
                continue;
            }
            changes.push((user, mechanism, None));
        }
        for upsertion in &req.upsertions {
            let user = upsertion.name.to_string();
            if user.is_empty() {
                errors.insert(
                    user.clone(),
                    (
                        ResponseError::UnacceptableCredential,
                        "Username must not be empty".into(),
                    ),
                );
                continue;
            }
            let Some(mechanism) = mechanism_of(upsertion.mechanism) else {
                errors.insert(user, unknown_mechanism(upsertion.mechanism));
                continue;
            };
            let credential = u32::try_from(upsertion.iterations)
                .map_err(|_| "iterations must be positive".to_string())
                .and_then(|iterations| {
                    ScramCredential::from_salted_password(
                        mechanism,
                        &upsertion.salted_password,
                        &upsertion.salt,
                        iterations,
                    )
                    .map_err(|e| e.to_string())
                });
            match credential {
                Ok(credential) => changes.push((user, mechanism, Some(credential))),
                Err(reason) => {
                    errors.insert(user, (ResponseError::UnacceptableCredential, reason));
                }
            }
        }
        for (user, count) in &seen {
            if *count > 1 {
                errors.insert(
                    user.clone(),
                    (
                        ResponseError::DuplicateResource,
                        "A user credential cannot be altered twice in the same request".into(),
                    ),
                );
            }
        }
        changes.retain(|(user, _, _)| !errors.contains_key(user));
        if !changes.is_empty() {
            let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes
                .iter()
                .map(|(user, mechanism, credential)| {
                    (
                        key(user, *mechanism),
                        credential.as_ref().and_then(|c| serde_json::to_vec(c).ok()),
                    )
                })
                .collect();
            match self.append_state_records(CREDENTIALS_TOPIC, &records).await {
                Ok(_) => {
                    let mut users = self.credentials.users.write();
                    for (user, mechanism, credential) in changes {
                        tracing::info!(
                            user,
                            mechanism = mechanism.name(),
                            deleted = credential.is_none(),
                            "changed a SCRAM credential"
                        );
                        self.audit_change(
                            caller,
                            format!("USER:{user}"),
                            if credential.is_some() {
                                "UPSERT_SCRAM_CREDENTIAL"
                            } else {
                                "DELETE_SCRAM_CREDENTIAL"
                            },
                            mechanism.name(),
                        );
                        match credential {
                            Some(credential) => users.insert((user, id_of(mechanism)), credential),
                            None => users.remove(&(user, id_of(mechanism))),
                        };
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not store SCRAM credentials");
                    for (user, _, _) in changes {
                        errors.insert(user, (ResponseError::KafkaStorageError, err.to_string()));
                    }
                }
            }
        }
        AlterUserScramCredentialsResponse::default().with_results(
            order
                .iter()
                .map(|user| result(user, errors.get(user).cloned()))
                .collect(),
        )
    }

    pub(crate) fn describe_user_scram_credentials(
        &self,
        req: DescribeUserScramCredentialsRequest,
    ) -> DescribeUserScramCredentialsResponse {
        let users = self.credentials.users.read();
        let mut by_user: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
        for ((user, mechanism), credential) in users.iter() {
            by_user.entry(user.as_str()).or_default().push(
                CredentialInfo::default()
                    .with_mechanism(*mechanism)
                    .with_iterations(i32::try_from(credential.iterations).unwrap_or(i32::MAX)),
            );
        }
        let results = match req.users {
            None => by_user
                .into_iter()
                .map(|(user, infos)| {
                    DescribeUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(user.to_string()))
                        .with_credential_infos(infos)
                })
                .collect(),
            Some(asked) => {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for name in &asked {
                    *counts.entry(name.name.to_string()).or_default() += 1;
                }
                let mut done = BTreeSet::new();
                asked
                    .iter()
                    .filter(|name| done.insert(name.name.to_string()))
                    .map(|name| {
                        let user = name.name.to_string();
                        let out = DescribeUserScramCredentialsResult::default()
                            .with_user(StrBytes::from_string(user.clone()));
                        if counts[&user] > 1 {
                            return out
                                .with_error_code(ResponseError::DuplicateResource.code())
                                .with_error_message(Some(StrBytes::from_string(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"))));
                        }
                        match by_user.get(user.as_str()) {
                            Some(infos) => out.with_credential_infos(infos.clone()),
                            None => out
                                .with_error_code(ResponseError::ResourceNotFound.code())
                                .with_error_message(Some(StrBytes::from_string(format!("Attempt to describe nonexistent user: {user}")))),
                        }
                    })
                    .collect()
            }
        };
        DescribeUserScramCredentialsResponse::default().with_results(results)
    }
}
