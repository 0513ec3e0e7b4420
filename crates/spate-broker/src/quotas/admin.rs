//! DescribeClientQuotas and AlterClientQuotas, with the checks and error messages of Kafka's
//! controller (`ClientQuotaControlManager`) and metadata image (`ClientQuotasImage`).
//!
//! An alteration is checked per entity; the changes of every entity that passed are appended
//! to `__client_quotas` as one batch and applied once durable. `validate_only` checks and
//! answers without writing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as AlterEntityData, EntryData as AlterEntry,
};
use kafka_protocol::messages::alter_client_quotas_response;
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{CLIENT_ID, EntityName, IP, QUOTAS_TOPIC, QuotaEntity, QuotaKey, USER, record_key};
use crate::Broker;

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

type Refusal = (ResponseError, String);

/// The changes one request entry asks for: set (`Some`) or remove (`None`) each key.
type EntryChanges = (QuotaEntity, Vec<(QuotaKey, Option<f64>)>);

fn invalid(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest, message.into())
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Kafka's `validateEntity` and `configKeysForEntityType`: known types, once each, no empty
/// names, IP entities alone and naming an address.
fn parse_entity(data: &[AlterEntityData]) -> Result<QuotaEntity, Refusal> {
    if data.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    let mut entity = QuotaEntity::default();
    for component in data {
        let entity_type = component.entity_type.as_str();
        let name = component.entity_name.as_ref().map(|n| n.as_str());
        let slot = match entity_type {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => &mut entity.ip,
            other => {
                return Err(invalid(format!(
                    "Unhandled client quota entity type: {other}"
                )));
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Invalid client quota entity, duplicate entity entry {entity_type}"
            )));
        }
        if name == Some("") {
            return Err(invalid(format!("Empty {entity_type} not supported")));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if let Some(ip) = &entity.ip {
        if entity.user.is_some() || entity.client_id.is_some() {
            return Err(invalid(
                "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
            ));
        }
        if let EntityName::Named(name) = ip {
            if name.parse::<IpAddr>().is_err() {
                return Err(invalid(format!(
                    "{name} is not a valid IP address (Spate does not resolve host names)"
                )));
            }
        }
    }
    Ok(entity)
}

/// Kafka's `validateQuotaKeyValue`: a key of the entity's kind, a positive value, whole where
/// the key is integral.
fn check_value(entity: &QuotaEntity, name: &str, value: f64) -> Result<QuotaKey, Refusal> {
    let key = QuotaKey::parse(name)
        .filter(|k| k.is_ip_key() == entity.ip.is_some())
        .ok_or_else(|| {
            if name == "controller_mutation_rate" && entity.ip.is_none() {
                invalid(
                    "Spate does not enforce controller_mutation_rate (KIP-599); it cannot be set",
                )
            } else {
                invalid(format!("Invalid configuration key {name}"))
            }
        })?;
    if !value.is_finite() {
        return Err(invalid(format!("Quota {name} must be a finite number")));
    }
    if value <= 0.0 {
        return Err(invalid(format!("Quota {name} must be greater than 0")));
    }
    if let Some(max) = key.integral_max() {
        if value > max {
            let kind = if key.is_ip_key() { "an INT" } else { "a LONG" };
            return Err(invalid(format!(
                "Proposed value for {name} is too large for {kind}."
            )));
        }
        if (value % 1.0).abs() > 1e-6 {
            return Err(invalid(format!("{name} cannot be a fractional value.")));
        }
    }
    Ok(key)
}

/// The changes one request entry asks for, or why it is refused.
fn check_entry(entry: &AlterEntry) -> Result<EntryChanges, Refusal> {
    let entity = parse_entity(&entry.entity)?;
    let mut seen = BTreeSet::new();
    let mut ops = Vec::new();
    for op in &entry.ops {
        let name = op.key.as_str();
        if !seen.insert(name) {
            return Err(invalid(format!(
                "Duplicate quota key {name} not updating quota for this entity {entity}"
            )));
        }
        if op.remove {
            // Removing a key that was never set (or is unknown) is a no-op, as in Kafka.
            if let Some(key) = QuotaKey::parse(name) {
                ops.push((key, None));
            }
        } else {
            ops.push((check_value(&entity, name, op.value)?, Some(op.value)));
        }
    }
    Ok((entity, ops))
}

/// A DescribeClientQuotas filter: each component type once, with an exact name, the default,
/// or any name.
#[derive(Debug, Default)]
struct Filter {
    /// Type → `Some(name)` to match exactly (the name may be the default), `None` for any.
    components: BTreeMap<&'static str, Option<EntityName>>,
    strict: bool,
}

fn parse_filter(req: &DescribeClientQuotasRequest) -> Result<Filter, Refusal> {
    let mut filter = Filter {
        strict: req.strict,
        ..Default::default()
    };
    for component in &req.components {
        let entity_type = match component.entity_type.as_str() {
            "" => return Err(invalid("Invalid empty entity type.")),
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            IP => IP,
            other => {
                return Err((
                    ResponseError::UnsupportedVersion,
                    format!("Unsupported entity type {other}"),
                ));
            }
        };
        if filter.components.contains_key(entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        let name = component._match.as_ref().map(|m| m.as_str());
        let matching = match (component.match_type, name) {
            (MATCH_EXACT, Some(name)) => Some(EntityName::Named(name.to_string())),
            (MATCH_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                ));
            }
            (MATCH_DEFAULT, None) => Some(EntityName::Default),
            (MATCH_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                ));
            }
            (MATCH_SPECIFIED, None) => None,
            (MATCH_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                ));
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        };
        filter.components.insert(entity_type, matching);
    }
    if filter.components.contains_key(IP) && filter.components.len() > 1 {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        ));
    }
    Ok(filter)
}

impl Filter {
    /// Kafka's matching: every component matches (a type filter matches any name of that
    /// type, the default included); strict filters also want no other types in the entity.
    fn matches(&self, entity: &QuotaEntity) -> bool {
        let all = self.components.iter().all(|(entity_type, wanted)| {
            match (entity.get(entity_type), wanted) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(name), Some(wanted)) => name == wanted,
            }
        });
        all && (!self.strict || entity.components().len() == self.components.len())
    }
}

impl Broker {
    pub(crate) fn describe_client_quotas(
        &self,
        req: DescribeClientQuotasRequest,
    ) -> DescribeClientQuotasResponse {
        let filter = match parse_filter(&req) {
            Ok(filter) => filter,
            Err((code, message)) => {
                return DescribeClientQuotasResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(text(&message)))
                    .with_entries(None);
            }
        };
        let entries = self
            .client_quotas
            .entries()
            .into_iter()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, values)| {
                DescribedEntry::default()
                    .with_entity(
                        entity
                            .components()
                            .into_iter()
                            .map(|(t, n)| {
                                DescribedEntity::default()
                                    .with_entity_type(text(t))
                                    .with_entity_name(n.as_wire().map(text))
                            })
                            .collect(),
                    )
                    .with_values(
                        values
                            .into_iter()
                            .map(|(k, v)| {
                                ValueData::default().with_key(text(k.name())).with_value(v)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeClientQuotasResponse::default()
            .with_error_message(None)
            .with_entries(Some(entries))
    }

    pub(crate) async fn alter_client_quotas(
        self: &Arc<Self>,
        req: AlterClientQuotasRequest,
        caller: &crate::authz::Caller,
    ) -> AlterClientQuotasResponse {
        let mut outcomes: Vec<Result<EntryChanges, Refusal>> =
            req.entries.iter().map(check_entry).collect();
        // An entity named twice in one request is refused both times (Kafka: "Ignoring
        // duplicate entity").
        let mut counts: BTreeMap<QuotaEntity, usize> = BTreeMap::new();
        for (entity, _) in outcomes.iter().flatten() {
            *counts.entry(entity.clone()).or_default() += 1;
        }
        for outcome in &mut outcomes {
            if let Ok((entity, _)) = outcome {
                if counts[entity] > 1 {
                    *outcome = Err(invalid(format!("Ignoring duplicate entity {entity}")));
                }
            }
        }
        let _writer = self.client_quotas.writer.lock().await;
        let current = self.client_quotas.entries();
        let changes: Vec<(QuotaEntity, QuotaKey, Option<f64>)> = outcomes
            .iter()
            .flatten()
            .flat_map(|(entity, ops)| {
                let values = current.get(entity);
                ops.iter()
                    .filter(move |(key, value)| {
                        // Only what changes is written, as Kafka's controller does.
                        values.and_then(|v| v.get(key)).copied() != *value
                    })
                    .map(move |(key, value)| (entity.clone(), *key, *value))
            })
            .collect();
        if !req.validate_only && !changes.is_empty() {
            let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes
                .iter()
                .map(|(entity, key, value)| {
                    (
                        record_key(entity, *key),
                        value.and_then(|v| {
                            serde_json::to_vec(&super::RecordValue { value: v }).ok()
                        }),
                    )
                })
                .collect();
            match self.append_state_records(QUOTAS_TOPIC, &records).await {
                Ok(_) => {
                    for (entity, key, value) in &changes {
                        tracing::info!(entity = %entity, key = key.name(), value, "changed a client quota");
                        self.audit_change(
                            caller,
                            format!("CLIENT_QUOTA:{entity}"),
                            "ALTER_CLIENT_QUOTAS",
                            match value {
                                Some(value) => format!("{}={value}", key.name()),
                                None => format!("{} removed", key.name()),
                            },
                        );
                    }
                    self.client_quotas.apply(&changes);
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not store client quotas");
                    for outcome in &mut outcomes {
                        if outcome.is_ok() {
                            *outcome = Err((ResponseError::KafkaStorageError, err.to_string()));
                        }
                    }
                }
            }
        }
        let entries = req
            .entries
            .iter()
            .zip(outcomes)
            .map(|(entry, outcome)| {
                // Kafka answers a null message for success (the generated default is "").
                let mut out = alter_client_quotas_response::EntryData::default()
                    .with_error_message(None)
                    .with_entity(
                        entry
                            .entity
                            .iter()
                            .map(|e| {
                                alter_client_quotas_response::EntityData::default()
                                    .with_entity_type(e.entity_type.clone())
                                    .with_entity_name(e.entity_name.clone())
                            })
                            .collect(),
                    );
                if let Err((code, message)) = outcome {
                    out.error_code = code.code();
                    out.error_message = Some(text(&message));
                }
                out
            })
            .collect();
        AlterClientQuotasResponse::default().with_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_caller() -> crate::authz::Caller {
        crate::authz::Caller::new(
            std::sync::Arc::from("User:admin"),
            None,
            crate::authz::Api::Kafka(kafka_protocol::messages::ApiKey::AlterClientQuotas),
        )
    }
    use kafka_protocol::messages::alter_client_quotas_request::OpData;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(entity_type: &str, name: Option<&str>) -> AlterEntityData {
        AlterEntityData::default()
            .with_entity_type(text(entity_type))
            .with_entity_name(name.map(text))
    }

    fn set(key: &str, value: f64) -> OpData {
        OpData::default().with_key(text(key)).with_value(value)
    }

    fn refusal(entity: Vec<AlterEntityData>, ops: Vec<OpData>) -> String {
        let entry = AlterEntry::default().with_entity(entity).with_ops(ops);
        match check_entry(&entry) {
            Ok(_) => "accepted".to_string(),
            Err((code, message)) => {
                assert_eq!(code, ResponseError::InvalidRequest);
                message
            }
        }
    }

    #[test]
    fn alterations_are_checked_as_kafka_checks_them() {
        let alice = || vec![component(USER, Some("alice"))];
        assert_eq!(
            refusal(alice(), vec![set("producer_byte_rate", 1024.0)]),
            "accepted"
        );
        assert_eq!(refusal(vec![], vec![]), "Invalid empty client quota entity");
        assert_eq!(
            refusal(vec![component("group", Some("g"))], vec![]),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            refusal(
                vec![component(USER, Some("a")), component(USER, Some("b"))],
                vec![]
            ),
            "Invalid client quota entity, duplicate entity entry user"
        );
        assert_eq!(
            refusal(vec![component(USER, Some(""))], vec![]),
            "Empty user not supported"
        );
        assert_eq!(
            refusal(vec![component(USER, None), component(IP, None)], vec![]),
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
        );
        assert!(
            refusal(vec![component(IP, Some("not-an-ip"))], vec![])
                .starts_with("not-an-ip is not a valid IP address")
        );
        assert_eq!(
            refusal(alice(), vec![set("bogus_rate", 1.0)]),
            "Invalid configuration key bogus_rate"
        );
        assert_eq!(
            refusal(alice(), vec![set("connection_creation_rate", 1.0)]),
            "Invalid configuration key connection_creation_rate",
            "IP keys are for IP entities"
        );
        assert_eq!(
            refusal(
                vec![component(IP, None)],
                vec![set("producer_byte_rate", 1.0)]
            ),
            "Invalid configuration key producer_byte_rate"
        );
        assert_eq!(
            refusal(alice(), vec![set("producer_byte_rate", -5.0)]),
            "Quota producer_byte_rate must be greater than 0"
        );
        assert_eq!(
            refusal(alice(), vec![set("consumer_byte_rate", 0.0)]),
            "Quota consumer_byte_rate must be greater than 0"
        );
        assert_eq!(
            refusal(alice(), vec![set("producer_byte_rate", 10.5)]),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            refusal(alice(), vec![set("request_percentage", 12.5)]),
            "accepted"
        );
        assert_eq!(
            refusal(
                vec![component(IP, None)],
                vec![set("connection_creation_rate", 3e9)]
            ),
            "Proposed value for connection_creation_rate is too large for an INT."
        );
        assert_eq!(
            refusal(alice(), vec![set("request_percentage", f64::NAN)]),
            "Quota request_percentage must be a finite number"
        );
        assert_eq!(
            refusal(
                alice(),
                vec![
                    set("producer_byte_rate", 1.0),
                    set("producer_byte_rate", 2.0)
                ]
            ),
            "Duplicate quota key producer_byte_rate not updating quota for this entity {user=alice}"
        );
    }

    fn open(dir: &std::path::Path) -> Arc<Broker> {
        Broker::open(crate::BrokerOptions {
            data_dir: dir.to_path_buf(),
            node_id: 1,
            advertised_host: "localhost".into(),
            advertised_port: 9092,
            listeners: Vec::new(),
            auto_create_topics: false,
            default_partitions: 1,
            fetch_max_bytes: 1 << 20,
            topic_defaults: BTreeMap::new(),
            static_configs: BTreeMap::new(),
            log_levels: None,
            sync_threads: 1,
            groups: Default::default(),
            transactions: Default::default(),
            clock: crate::system_clock(),
            authorization: None,
        })
        .expect("open broker")
    }

    fn alter(entries: Vec<AlterEntry>, validate_only: bool) -> AlterClientQuotasRequest {
        AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only)
    }

    fn codes(response: &AlterClientQuotasResponse) -> Vec<i16> {
        response.entries.iter().map(|e| e.error_code).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quotas_are_kept_in_their_topic_and_validate_only_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alice_app = || {
            vec![
                component(USER, Some("alice")),
                component(CLIENT_ID, Some("app")),
            ]
        };
        let default_user = || vec![component(USER, None)];
        {
            let broker = open(dir.path());
            let checked = broker
                .alter_client_quotas(
                    alter(
                        vec![
                            AlterEntry::default()
                                .with_entity(alice_app())
                                .with_ops(vec![set("producer_byte_rate", 1024.0)]),
                        ],
                        true,
                    ),
                    &test_caller(),
                )
                .await;
            assert_eq!(codes(&checked), vec![0]);
            assert!(broker.client_quotas().entries().is_empty(), "validate_only");
            let response = broker
                .alter_client_quotas(
                    alter(
                        vec![
                            AlterEntry::default()
                                .with_entity(alice_app())
                                .with_ops(vec![
                                    set("producer_byte_rate", 1024.0),
                                    set("request_percentage", 25.0),
                                ]),
                            AlterEntry::default()
                                .with_entity(default_user())
                                .with_ops(vec![set("consumer_byte_rate", 2048.0)]),
                            AlterEntry::default()
                                .with_entity(vec![component(IP, Some("10.0.0.1"))])
                                .with_ops(vec![set("connection_creation_rate", 10.0)]),
                            AlterEntry::default()
                                .with_entity(vec![component(CLIENT_ID, Some("bad"))])
                                .with_ops(vec![set("producer_byte_rate", -1.0)]),
                        ],
                        false,
                    ),
                    &test_caller(),
                )
                .await;
            assert_eq!(
                codes(&response),
                vec![0, 0, 0, ResponseError::InvalidRequest.code()]
            );
            assert_eq!(
                response.entries[3].error_message.as_deref(),
                Some("Quota producer_byte_rate must be greater than 0")
            );
            // Removing one key keeps the others of the entity.
            let removed = broker
                .alter_client_quotas(
                    alter(
                        vec![
                            AlterEntry::default()
                                .with_entity(alice_app())
                                .with_ops(vec![
                                    OpData::default()
                                        .with_key(text("request_percentage"))
                                        .with_remove(true),
                                ]),
                        ],
                        false,
                    ),
                    &test_caller(),
                )
                .await;
            assert_eq!(codes(&removed), vec![0]);
            broker.shutdown();
        }
        let broker = open(dir.path());
        let described = broker.describe_client_quotas(DescribeClientQuotasRequest::default());
        assert_eq!(described.error_code, 0);
        type Described = (Vec<(String, Option<String>)>, Vec<(String, f64)>);
        let mut seen: Vec<Described> = described
            .entries
            .expect("entries")
            .into_iter()
            .map(|e| {
                (
                    e.entity
                        .iter()
                        .map(|c| {
                            (
                                c.entity_type.to_string(),
                                c.entity_name.as_ref().map(|n| n.to_string()),
                            )
                        })
                        .collect(),
                    e.values
                        .iter()
                        .map(|v| (v.key.to_string(), v.value))
                        .collect(),
                )
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let pair = |t: &str, n: Option<&str>| (t.to_string(), n.map(str::to_string));
        assert_eq!(
            seen,
            vec![
                (
                    vec![pair(IP, Some("10.0.0.1"))],
                    vec![("connection_creation_rate".to_string(), 10.0)]
                ),
                (
                    vec![pair(USER, None)],
                    vec![("consumer_byte_rate".to_string(), 2048.0)]
                ),
                (
                    vec![pair(USER, Some("alice")), pair(CLIENT_ID, Some("app"))],
                    vec![("producer_byte_rate".to_string(), 1024.0)]
                ),
            ],
            "restored from {QUOTAS_TOPIC} after a restart"
        );
        assert_eq!(
            broker
                .client_quotas()
                .connection_rate("10.0.0.1".parse().expect("ip")),
            Some(10.0)
        );
    }

    fn describe(components: Vec<ComponentData>, strict: bool) -> Result<Filter, Refusal> {
        parse_filter(
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict),
        )
    }

    fn filter_component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(text(entity_type))
            .with_match_type(match_type)
            .with_match(name.map(text))
    }

    #[test]
    fn describe_filters_match_as_in_kafka() {
        let named = |user: Option<&str>, client: Option<Option<&str>>| QuotaEntity {
            user: user.map(|u| EntityName::Named(u.to_string())),
            client_id: client.map(EntityName::from_wire),
            ip: None,
        };
        let alice = named(Some("alice"), None);
        let alice_app = named(Some("alice"), Some(Some("app")));
        let alice_default_client = named(Some("alice"), Some(None));
        let app = named(None, Some(Some("app")));

        let exact = describe(
            vec![filter_component(USER, MATCH_EXACT, Some("alice"))],
            false,
        )
        .expect("filter");
        assert!(exact.matches(&alice) && exact.matches(&alice_app) && !exact.matches(&app));
        let strict = describe(
            vec![filter_component(USER, MATCH_EXACT, Some("alice"))],
            true,
        )
        .expect("filter");
        assert!(strict.matches(&alice) && !strict.matches(&alice_app));
        let default_client = describe(
            vec![filter_component(CLIENT_ID, MATCH_DEFAULT, None)],
            false,
        )
        .expect("filter");
        assert!(default_client.matches(&alice_default_client) && !default_client.matches(&app));
        let any_client = describe(
            vec![filter_component(CLIENT_ID, MATCH_SPECIFIED, None)],
            false,
        )
        .expect("filter");
        assert!(any_client.matches(&app) && any_client.matches(&alice_default_client));
        assert!(!any_client.matches(&alice));
        let everything = describe(vec![], false).expect("filter");
        assert!(everything.matches(&alice) && everything.matches(&app));
        let nothing = describe(vec![], true).expect("filter");
        assert!(!nothing.matches(&alice));
    }

    #[test]
    fn bad_describe_filters_are_refused() {
        let error = |components, code: ResponseError, message: &str| {
            let (got_code, got) = describe(components, false).expect_err("refused");
            assert_eq!((got_code, got.as_str()), (code, message));
        };
        error(
            vec![filter_component("", MATCH_SPECIFIED, None)],
            ResponseError::InvalidRequest,
            "Invalid empty entity type.",
        );
        error(
            vec![filter_component("topic", MATCH_SPECIFIED, None)],
            ResponseError::UnsupportedVersion,
            "Unsupported entity type topic",
        );
        error(
            vec![
                filter_component(USER, MATCH_SPECIFIED, None),
                filter_component(USER, MATCH_DEFAULT, None),
            ],
            ResponseError::InvalidRequest,
            "Entity type user cannot appear more than once in the filter.",
        );
        error(
            vec![filter_component(USER, MATCH_EXACT, None)],
            ResponseError::InvalidRequest,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        );
        error(
            vec![filter_component(USER, MATCH_DEFAULT, Some("x"))],
            ResponseError::InvalidRequest,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        );
        error(
            vec![filter_component(USER, 7, None)],
            ResponseError::InvalidRequest,
            "Unknown match type 7",
        );
        error(
            vec![
                filter_component(IP, MATCH_SPECIFIED, None),
                filter_component(USER, MATCH_SPECIFIED, None),
            ],
            ResponseError::InvalidRequest,
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        );
    }
}
