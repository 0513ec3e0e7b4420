//! ACL administration: CreateAcls, DescribeAcls and DeleteAcls over Kafka's ACL model
//! (`spate_auth::acl`), with the bindings kept in the internal compacted topic `__acls`.
//!
//! This is the store and the admin APIs; `authz.rs` checks requests against it. Only
//! versions 1+ are advertised (Kafka 4 dropped v0), so every request carries a pattern type.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::RwLock;
use spate_auth::acl::{
    AclBinding, AclBindingFilter, AclRecord, Authorizer, AuthorizerConfig, Operation, PatternType,
    Permission, ResourceType,
};

use crate::Broker;
use crate::authz::Caller;
use crate::error::BrokerError;

/// The internal topic ACLs live in.
pub const ACLS_TOPIC: &str = "__acls";

/// The ACLs, indexed for authorisation.
pub struct Acls {
    pub(crate) authorizer: RwLock<Authorizer>,
}

impl std::fmt::Debug for Acls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acls").finish_non_exhaustive()
    }
}

impl Acls {
    /// No ACLs yet, with the authorizer's settings.
    pub(crate) fn new(config: AuthorizerConfig) -> Acls {
        Acls {
            authorizer: RwLock::new(Authorizer::new(config)),
        }
    }

    /// Rebuilds the ACLs from `__acls` (created with the first ACL). Blocking.
    pub(crate) fn load(&self, broker: &Broker) -> Result<(), BrokerError> {
        let mut authorizer = self.authorizer.write();
        broker.replay_state_topic(ACLS_TOPIC, |offset, key, value| {
            let applied = key
                .ok_or(spate_auth::acl::AclError::MalformedRecord {
                    reason: "no key".into(),
                })
                .and_then(|key| spate_auth::acl::decode(key, value))
                .and_then(|record| authorizer.apply(record));
            if let Err(err) = applied {
                tracing::warn!(topic = ACLS_TOPIC, offset, error = %err, "skipped an ACL record");
            }
        })
    }
}

impl Broker {
    /// With the ACL authorizer on, no super user and no ACL, every request is denied and
    /// nobody can create the first ACL: say so once at start-up, with what to do.
    pub(crate) fn warn_if_nobody_is_allowed(&self) {
        let Some(config) = &self.options.authorization else {
            return;
        };
        if config.super_users.is_empty()
            && !config.allow_everyone_if_no_acl_found
            && self.acls.authorizer.read().is_empty()
        {
            tracing::warn!(
                "the ACL authorizer is on with no super user and no ACL: every request will be denied; add --super-user (e.g. User:ANONYMOUS on an internal listener) to create the first ACLs"
            );
        }
    }

    fn audit_acl(&self, caller: &Caller, binding: &AclBinding, operation: &str) {
        self.audit_change(
            caller,
            format!("{}:{}", binding.resource_type, binding.resource_name),
            operation,
            binding.to_string(),
        );
    }
}

fn text(value: &StrBytes) -> String {
    value.to_string()
}

fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_id(resource_type),
        resource_name: name.map(text),
        pattern_type: PatternType::from_id(pattern),
        principal: principal.map(text),
        host: host.map(text),
        operation: Operation::from_id(operation),
        permission: Permission::from_id(permission),
    }
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl Broker {
    pub(crate) async fn create_acls(
        self: &Arc<Self>,
        req: CreateAclsRequest,
        caller: &Caller,
    ) -> CreateAclsResponse {
        let mut results = Vec::new();
        let mut valid = Vec::new();
        for (index, creation) in req.creations.iter().enumerate() {
            let binding = AclBinding {
                resource_type: ResourceType::from_id(creation.resource_type),
                resource_name: text(&creation.resource_name),
                pattern_type: PatternType::from_id(creation.resource_pattern_type),
                principal: text(&creation.principal),
                host: text(&creation.host),
                operation: Operation::from_id(creation.operation),
                permission: Permission::from_id(creation.permission_type),
            };
            match binding.validate() {
                Ok(()) => {
                    valid.push((index, binding));
                    results.push(AclCreationResult::default());
                }
                Err(err) => results.push(
                    AclCreationResult::default()
                        .with_error_code(err.kafka_error_code())
                        .with_error_message(Some(StrBytes::from_string(err.to_string()))),
                ),
            }
        }
        if !valid.is_empty() {
            let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = valid
                .iter()
                .map(|(_, binding)| {
                    let (key, value) = spate_auth::acl::encode(binding);
                    (key, Some(value))
                })
                .collect();
            match self.append_state_records(ACLS_TOPIC, &records).await {
                Ok(_) => {
                    let mut authorizer = self.acls.authorizer.write();
                    for (_, binding) in valid {
                        tracing::info!(acl = %binding, "created ACL");
                        self.audit_acl(caller, &binding, "CREATE_ACL");
                        let _ = authorizer.add(binding);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not store ACLs");
                    for (index, _) in valid {
                        results[index] = AclCreationResult::default()
                            .with_error_code(ResponseError::KafkaStorageError.code())
                            .with_error_message(Some(StrBytes::from_string(err.to_string())));
                    }
                }
            }
        }
        CreateAclsResponse::default().with_results(results)
    }

    pub(crate) fn describe_acls(&self, req: DescribeAclsRequest) -> DescribeAclsResponse {
        let filter = filter(
            req.resource_type_filter,
            req.resource_name_filter.as_ref(),
            req.pattern_type_filter,
            req.principal_filter.as_ref(),
            req.host_filter.as_ref(),
            req.operation,
            req.permission_type,
        );
        if let Err(err) = filter.validate() {
            return DescribeAclsResponse::default()
                .with_error_code(err.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(err.to_string())));
        }
        let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
        for binding in self.acls.authorizer.read().bindings(&filter) {
            by_resource
                .entry((
                    binding.resource_type.id(),
                    binding.resource_name.clone(),
                    binding.pattern_type.id(),
                ))
                .or_default()
                .push(
                    AclDescription::default()
                        .with_principal(s(&binding.principal))
                        .with_host(s(&binding.host))
                        .with_operation(binding.operation.id())
                        .with_permission_type(binding.permission.id()),
                );
        }
        DescribeAclsResponse::default().with_resources(
            by_resource
                .into_iter()
                .map(|((resource_type, name, pattern), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(&name))
                        .with_pattern_type(pattern)
                        .with_acls(acls)
                })
                .collect(),
        )
    }

    pub(crate) async fn delete_acls(
        self: &Arc<Self>,
        req: DeleteAclsRequest,
        caller: &Caller,
    ) -> DeleteAclsResponse {
        let mut results = Vec::new();
        let mut removed_all = Vec::new();
        {
            let mut authorizer = self.acls.authorizer.write();
            for f in &req.filters {
                let filter = filter(
                    f.resource_type_filter,
                    f.resource_name_filter.as_ref(),
                    f.pattern_type_filter,
                    f.principal_filter.as_ref(),
                    f.host_filter.as_ref(),
                    f.operation,
                    f.permission_type,
                );
                if let Err(err) = filter.validate() {
                    results.push(
                        DeleteAclsFilterResult::default()
                            .with_error_code(err.kafka_error_code())
                            .with_error_message(Some(StrBytes::from_string(err.to_string()))),
                    );
                    continue;
                }
                let removed = authorizer.remove_matching(&filter);
                results.push(
                    DeleteAclsFilterResult::default().with_matching_acls(
                        removed
                            .iter()
                            .map(|b| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(b.resource_type.id())
                                    .with_resource_name(s(&b.resource_name))
                                    .with_pattern_type(b.pattern_type.id())
                                    .with_principal(s(&b.principal))
                                    .with_host(s(&b.host))
                                    .with_operation(b.operation.id())
                                    .with_permission_type(b.permission.id())
                            })
                            .collect(),
                    ),
                );
                removed_all.extend(removed);
            }
        }
        if !removed_all.is_empty() {
            let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = removed_all
                .iter()
                .map(|b| (spate_auth::acl::key(b), None))
                .collect();
            if let Err(err) = self.append_state_records(ACLS_TOPIC, &records).await {
                // Not durable: put them back, and say so.
                tracing::error!(error = %err, "could not store ACL deletions");
                let mut authorizer = self.acls.authorizer.write();
                for binding in removed_all {
                    let _ = authorizer.apply(AclRecord::Put(binding));
                }
                for result in &mut results {
                    if result.error_code == 0 {
                        result.error_code = ResponseError::KafkaStorageError.code();
                        result.error_message = Some(StrBytes::from_string(err.to_string()));
                        result.matching_acls.clear();
                    }
                }
            } else {
                for binding in &removed_all {
                    tracing::info!(acl = %binding, "deleted ACL");
                    self.audit_acl(caller, binding, "DELETE_ACL");
                }
            }
        }
        DeleteAclsResponse::default().with_filter_results(results)
    }
}
