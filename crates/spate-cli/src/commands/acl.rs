//! `spate acl`: add, list and remove ACLs with CreateAcls, DescribeAcls and DeleteAcls, in the
//! manner of Kafka's `kafka-acls.sh`. Works against Spate and any Kafka cluster with an
//! authorizer.
//!
//! - `add` makes one binding per principal, host, operation and resource: `--allow-principal`
//!   and `--deny-principal` (with `--allow-host`/`--deny-host`, `*` by default), `--operation`,
//!   and one resource (`--topic`, `--group`, `--transactional-id` or `--cluster`). The
//!   conveniences `--producer` (topic WRITE, DESCRIBE, CREATE; WRITE and DESCRIBE on a
//!   `--transactional-id` too) and `--consumer` (topic READ and DESCRIBE, group READ) write the
//!   bindings those clients need. Operations a resource type does not have are refused, as
//!   `kafka-acls` refuses them.
//! - `list` prints the bindings a filter selects as a table.
//! - `remove` deletes the bindings its filter selects and prints them. It never prompts (it is
//!   made for scripts); instead, a filter that names neither a resource nor a principal, and so
//!   would remove every ACL, is refused unless `--force` is given. `--producer` and
//!   `--consumer` select exactly the allow bindings `add --producer/--consumer` writes (of the
//!   principals named, or of everyone), as `kafka-acls --remove --producer` does.
//!
//! `--resource-pattern-type` is `literal` by default when a resource is named, as in
//! `kafka-acls`; `prefixed` makes the name a prefix. `list` and `remove` also take `any` (every
//! pattern type, the name compared exactly) and `match` (every binding that applies to the
//! named resource, literal, wildcard and prefixed). With no resource named they select every
//! pattern type.

use anyhow::{Context, bail};
use spate_auth::acl::CLUSTER_NAME;
use spate_client::{
    AclBinding, AclBindingFilter, AclOperation as Operation, AclPatternType as PatternType,
    AclPermission as Permission, AclResourceType as ResourceType,
};

use super::client_args::{ClientArgs, runtime};
use super::group::{print, table};

/// Arguments of `spate acl`.
#[derive(Debug, clap::Args)]
pub struct AclArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AclCommand {
    /// Add ACLs: each principal and host, for each operation, on the resource.
    Add(AddArgs),
    /// List ACLs, all or those of a resource or principal.
    List(ListArgs),
    /// Remove the ACLs a filter selects, and print them.
    Remove(RemoveArgs),
}

/// The resource flags `add`, `list` and `remove` share.
#[derive(Debug, Clone, Default, clap::Args)]
struct ResourceArgs {
    /// A topic: its name, a prefix (with --resource-pattern-type prefixed), or `*` for all.
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group: its name, a prefix, or `*` for all.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// A transactional id: the id, a prefix, or `*` for all.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// The cluster (for cluster operations such as create, alter, describe-configs).
    #[arg(long)]
    cluster: bool,
    /// How the resource name matches: literal or prefixed; list and remove also take any and
    /// match [default: literal when a resource is named].
    #[arg(long, value_name = "TYPE", value_parser = parse_pattern_type)]
    resource_pattern_type: Option<PatternType>,
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// A principal to allow, e.g. User:alice (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// A principal to deny, e.g. User:mallory (repeatable); a deny wins over any allow.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// A client address the allow applies to (repeatable) [default: *, every host].
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// A client address the deny applies to (repeatable) [default: *, every host].
    #[arg(long = "deny-host", value_name = "HOST")]
    deny_hosts: Vec<String>,
    /// An operation (repeatable): read, write, create, delete, alter, describe,
    /// cluster-action, describe-configs, alter-configs, idempotent-write or all; Kafka's
    /// names (Read, DescribeConfigs, DESCRIBE_CONFIGS) work too.
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    operations: Vec<Operation>,
    /// The ACLs a producer needs: WRITE, DESCRIBE and CREATE on --topic (and WRITE and
    /// DESCRIBE on --transactional-id when given).
    #[arg(long)]
    producer: bool,
    /// The ACLs a consumer needs: READ and DESCRIBE on --topic, READ on --group.
    #[arg(long)]
    consumer: bool,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only the ACLs of this principal, e.g. User:alice (repeatable).
    #[arg(long = "principal", value_name = "PRINCIPAL")]
    principals: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RemoveArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only the ACLs of this principal, allow or deny (repeatable).
    #[arg(long = "principal", value_name = "PRINCIPAL")]
    principals: Vec<String>,
    /// Only this principal's allow ACLs (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// Only this principal's deny ACLs (repeatable).
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// Only the ACLs for this host (repeatable) [default: any host].
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only the ACLs for this operation (repeatable) [default: any operation].
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    operations: Vec<Operation>,
    /// Remove the ACLs `add --producer` writes: WRITE, DESCRIBE and CREATE on --topic (and
    /// WRITE and DESCRIBE on --transactional-id when given).
    #[arg(long)]
    producer: bool,
    /// Remove the ACLs `add --consumer` writes: READ and DESCRIBE on --topic, READ on
    /// --group.
    #[arg(long)]
    consumer: bool,
    /// Remove even when the filter names no resource and no principal (every ACL).
    #[arg(long)]
    force: bool,
}

fn parse_pattern_type(value: &str) -> Result<PatternType, String> {
    match value.parse::<PatternType>() {
        Ok(
            p @ (PatternType::Literal
            | PatternType::Prefixed
            | PatternType::Any
            | PatternType::Match),
        ) => Ok(p),
        _ => Err(format!(
            "unknown pattern type {value:?}: use literal or prefixed (list and remove: also any \
             or match)"
        )),
    }
}

fn parse_operation(value: &str) -> Result<Operation, String> {
    match value.parse::<Operation>() {
        Ok(operation) if operation.is_specific() => Ok(operation),
        _ => Err(format!(
            "unknown operation {value:?}: use read, write, create, delete, alter, describe, \
             cluster-action, describe-configs, alter-configs, idempotent-write or all"
        )),
    }
}

/// The operations an ACL on a resource type can name (Kafka's `AclCommand`).
fn valid_operations(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
            All,
        ],
        ResourceType::Group => &[Read, Describe, Delete, All],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
            CreateTokens,
            DescribeTokens,
            All,
        ],
        ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit, All],
        ResourceType::DelegationToken => &[Describe, All],
        ResourceType::User => &[CreateTokens, DescribeTokens, All],
        ResourceType::Unknown | ResourceType::Any => &[],
    }
}

/// Flag spelling of an operation, as `--operation` takes it.
fn flag_name(operation: Operation) -> String {
    operation.name().to_ascii_lowercase().replace('_', "-")
}

/// A resource pattern: type, name and pattern type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resource {
    resource_type: ResourceType,
    name: String,
    pattern_type: PatternType,
}

impl ResourceArgs {
    /// The named resources, in flag order.
    fn named(&self) -> Vec<(ResourceType, String)> {
        let mut named = Vec::new();
        if let Some(name) = &self.topic {
            named.push((ResourceType::Topic, name.clone()));
        }
        if let Some(name) = &self.group {
            named.push((ResourceType::Group, name.clone()));
        }
        if let Some(name) = &self.transactional_id {
            named.push((ResourceType::TransactionalId, name.clone()));
        }
        if self.cluster {
            named.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        named
    }

    /// The pattern type for `add`: literal unless told prefixed; never a filter value, and
    /// never prefixed for the cluster.
    fn add_pattern_type(&self) -> anyhow::Result<PatternType> {
        let pattern_type = self.resource_pattern_type.unwrap_or(PatternType::Literal);
        if !pattern_type.is_specific() {
            bail!(
                "--resource-pattern-type {} selects ACLs; adding needs literal or prefixed",
                flag_name_pattern(pattern_type)
            );
        }
        if self.cluster && pattern_type == PatternType::Prefixed {
            bail!("the cluster resource has one name; --cluster takes no prefixed pattern");
        }
        Ok(pattern_type)
    }

    /// The one resource a filter may name, or none.
    fn filter_resource(&self) -> anyhow::Result<Option<(ResourceType, String)>> {
        let mut named = self.named();
        if named.len() > 1 {
            bail!("name at most one of --topic, --group, --transactional-id and --cluster");
        }
        Ok(named.pop())
    }
}

fn flag_name_pattern(pattern_type: PatternType) -> String {
    pattern_type.name().to_ascii_lowercase()
}

impl AddArgs {
    /// The (resource, operations) pairs to write.
    fn grants(&self) -> anyhow::Result<Vec<(Resource, Vec<Operation>)>> {
        let r = &self.resource;
        let pattern_type = r.add_pattern_type()?;
        let resource = |resource_type, name: &str| Resource {
            resource_type,
            name: name.to_string(),
            pattern_type,
        };
        if self.producer || self.consumer {
            if !self.operations.is_empty() {
                bail!("--operation cannot be combined with --producer or --consumer");
            }
            return client_grants(r, self.producer, self.consumer, pattern_type);
        }
        let mut named = r.named();
        if named.len() != 1 {
            bail!(
                "name exactly one resource: --topic, --group, --transactional-id or --cluster \
                 (or use --producer/--consumer)"
            );
        }
        let (resource_type, name) = named.remove(0);
        if self.operations.is_empty() {
            bail!("name at least one --operation (or use --producer/--consumer)");
        }
        let valid = valid_operations(resource_type);
        for operation in &self.operations {
            if !valid.contains(operation) {
                bail!(
                    "{} is not an operation of a {} resource; use one of: {}",
                    flag_name(*operation),
                    resource_type,
                    valid
                        .iter()
                        .map(|o| flag_name(*o))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let mut operations = self.operations.clone();
        operations.sort();
        operations.dedup();
        Ok(vec![(resource(resource_type, &name), operations)])
    }

    /// Every binding the flags describe.
    fn bindings(&self) -> anyhow::Result<Vec<AclBinding>> {
        if self.allow_principals.is_empty() && self.deny_principals.is_empty() {
            bail!("name who: --allow-principal or --deny-principal (e.g. User:alice)");
        }
        if self.allow_principals.is_empty() && !self.allow_hosts.is_empty() {
            bail!("--allow-host needs --allow-principal");
        }
        if self.deny_principals.is_empty() && !self.deny_hosts.is_empty() {
            bail!("--deny-host needs --deny-principal");
        }
        let star = vec!["*".to_string()];
        let hosts = |hosts: &Vec<String>| {
            if hosts.is_empty() {
                star.clone()
            } else {
                hosts.clone()
            }
        };
        let entries = [
            (
                Permission::Allow,
                &self.allow_principals,
                hosts(&self.allow_hosts),
            ),
            (
                Permission::Deny,
                &self.deny_principals,
                hosts(&self.deny_hosts),
            ),
        ];
        let mut bindings = Vec::new();
        for (resource, operations) in self.grants()? {
            for (permission, principals, hosts) in &entries {
                for principal in *principals {
                    for host in hosts {
                        for operation in &operations {
                            let binding = AclBinding {
                                resource_type: resource.resource_type,
                                resource_name: resource.name.clone(),
                                pattern_type: resource.pattern_type,
                                principal: principal.clone(),
                                host: host.clone(),
                                operation: *operation,
                                permission: *permission,
                            };
                            binding
                                .validate()
                                .with_context(|| format!("invalid ACL for {principal}"))?;
                            bindings.push(binding);
                        }
                    }
                }
            }
        }
        bindings.sort();
        bindings.dedup();
        Ok(bindings)
    }
}

/// The resource part of a list or remove filter: a named resource with the pattern type
/// (literal by default), or every resource with the pattern type (any by default).
fn resource_filter(resource: &ResourceArgs) -> anyhow::Result<AclBindingFilter> {
    let named = resource.filter_resource()?;
    let mut filter = AclBindingFilter::any();
    match named {
        Some((resource_type, name)) => {
            filter.resource_type = resource_type;
            filter.resource_name = Some(name);
            filter.pattern_type = resource
                .resource_pattern_type
                .unwrap_or(PatternType::Literal);
        }
        None => {
            filter.pattern_type = resource.resource_pattern_type.unwrap_or(PatternType::Any);
        }
    }
    Ok(filter)
}

impl ListArgs {
    fn filters(&self) -> anyhow::Result<Vec<AclBindingFilter>> {
        let base = resource_filter(&self.resource)?;
        if self.principals.is_empty() {
            return Ok(vec![base]);
        }
        self.principals
            .iter()
            .map(|principal| {
                check_principal(principal)?;
                Ok(AclBindingFilter {
                    principal: Some(principal.clone()),
                    ..base.clone()
                })
            })
            .collect()
    }
}

/// The (resource, operations) pairs `--producer` and `--consumer` stand for, as `add` grants
/// them; `pattern_type` is the pattern the resources are named with.
fn client_grants(
    resource: &ResourceArgs,
    producer: bool,
    consumer: bool,
    pattern_type: PatternType,
) -> anyhow::Result<Vec<(Resource, Vec<Operation>)>> {
    let r = resource;
    let named = |resource_type, name: &str| Resource {
        resource_type,
        name: name.to_string(),
        pattern_type,
    };
    if r.cluster {
        bail!(
            "--producer and --consumer take --topic (and --group or --transactional-id), not --cluster"
        );
    }
    let Some(topic) = &r.topic else {
        bail!("--producer and --consumer need --topic");
    };
    let mut grants = Vec::new();
    let mut topic_operations = Vec::new();
    if producer {
        topic_operations.extend([Operation::Write, Operation::Describe, Operation::Create]);
    }
    if consumer {
        topic_operations.extend([Operation::Read, Operation::Describe]);
    }
    topic_operations.sort();
    topic_operations.dedup();
    grants.push((named(ResourceType::Topic, topic), topic_operations));
    match (&r.group, consumer) {
        (Some(group), true) => {
            grants.push((named(ResourceType::Group, group), vec![Operation::Read]))
        }
        (None, true) => bail!("--consumer needs --group, the consumer group to allow"),
        (Some(_), false) => bail!("--group goes with --consumer, not --producer alone"),
        (None, false) => {}
    }
    match (&r.transactional_id, producer) {
        (Some(id), true) => grants.push((
            named(ResourceType::TransactionalId, id),
            vec![Operation::Write, Operation::Describe],
        )),
        (Some(_), false) => bail!("--transactional-id goes with --producer"),
        (None, _) => {}
    }
    Ok(grants)
}

impl RemoveArgs {
    /// The filters of `--producer`/`--consumer`: each binding `add` would write, for the
    /// principals named (allow bindings only) or for everyone.
    fn client_filters(&self) -> anyhow::Result<Vec<AclBindingFilter>> {
        if !self.operations.is_empty() {
            bail!("--operation cannot be combined with --producer or --consumer");
        }
        if !self.deny_principals.is_empty() {
            bail!("--producer and --consumer remove allow ACLs; --deny-principal does not fit");
        }
        let pattern_type = self.resource.add_pattern_type()?;
        let grants = client_grants(&self.resource, self.producer, self.consumer, pattern_type)?;
        let mut who: Vec<Option<String>> = Vec::new();
        for principal in self.principals.iter().chain(&self.allow_principals) {
            check_principal(principal)?;
            who.push(Some(principal.clone()));
        }
        if who.is_empty() {
            who.push(None);
        }
        let hosts: Vec<Option<String>> = if self.hosts.is_empty() {
            vec![None]
        } else {
            self.hosts.iter().cloned().map(Some).collect()
        };
        let mut filters = Vec::new();
        for (resource, operations) in &grants {
            for operation in operations {
                for principal in &who {
                    for host in &hosts {
                        filters.push(AclBindingFilter {
                            resource_type: resource.resource_type,
                            resource_name: Some(resource.name.clone()),
                            pattern_type: resource.pattern_type,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *operation,
                            permission: Permission::Allow,
                        });
                    }
                }
            }
        }
        Ok(filters)
    }

    fn filters(&self) -> anyhow::Result<Vec<AclBindingFilter>> {
        if self.producer || self.consumer {
            return self.client_filters();
        }
        let base = resource_filter(&self.resource)?;
        let mut who: Vec<(Option<String>, Permission)> = Vec::new();
        for (principals, permission) in [
            (&self.principals, Permission::Any),
            (&self.allow_principals, Permission::Allow),
            (&self.deny_principals, Permission::Deny),
        ] {
            for principal in principals {
                check_principal(principal)?;
                who.push((Some(principal.clone()), permission));
            }
        }
        let everything = base.resource_name.is_none() && who.is_empty();
        if everything && !self.force {
            bail!(
                "this filter names no resource and no principal, so it would remove every ACL \
                 of the cluster; name a resource (--topic, --group, --transactional-id, \
                 --cluster) or a principal, or pass --force to remove them all"
            );
        }
        if who.is_empty() {
            who.push((None, Permission::Any));
        }
        let hosts: Vec<Option<String>> = if self.hosts.is_empty() {
            vec![None]
        } else {
            self.hosts.iter().cloned().map(Some).collect()
        };
        let operations = if self.operations.is_empty() {
            vec![Operation::Any]
        } else {
            self.operations.clone()
        };
        let mut filters = Vec::new();
        for (principal, permission) in &who {
            for host in &hosts {
                for operation in &operations {
                    filters.push(AclBindingFilter {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission: *permission,
                        ..base.clone()
                    });
                }
            }
        }
        Ok(filters)
    }
}

fn check_principal(principal: &str) -> anyhow::Result<()> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => bail!("expected a principal as Type:name, e.g. User:alice, but got {principal:?}"),
    }
}

/// The bindings as a table, one per line.
fn acl_table(bindings: &[AclBinding]) -> String {
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .map(|b| {
            vec![
                b.resource_type.name().to_string(),
                b.resource_name.clone(),
                b.pattern_type.name().to_string(),
                b.principal.clone(),
                b.host.clone(),
                b.operation.name().to_string(),
                b.permission.name().to_string(),
            ]
        })
        .collect();
    table(
        &[
            "RESOURCE-TYPE",
            "NAME",
            "PATTERN",
            "PRINCIPAL",
            "HOST",
            "OPERATION",
            "PERMISSION",
        ],
        &rows,
    )
}

/// Runs `spate acl`.
pub fn run(args: AclArgs) -> anyhow::Result<()> {
    // Flags are checked before connecting, so a mistake costs no round trip.
    enum Plan {
        Add(Vec<AclBinding>),
        List(Vec<AclBindingFilter>),
        Remove(Vec<AclBindingFilter>),
    }
    let plan = match &args.command {
        AclCommand::Add(a) => Plan::Add(a.bindings()?),
        AclCommand::List(a) => Plan::List(a.filters()?),
        AclCommand::Remove(a) => Plan::Remove(a.filters()?),
    };
    runtime()?.block_on(async move {
        let client = args.client.connect().await?;
        match plan {
            Plan::Add(bindings) => {
                client.create_acls(&bindings).await?;
                print(&acl_table(&bindings))?;
                eprintln!("added {} ACL(s)", bindings.len());
            }
            Plan::List(filters) => {
                let mut found = Vec::new();
                for filter in &filters {
                    found.extend(client.describe_acls(filter).await?);
                }
                found.sort();
                found.dedup();
                print(&acl_table(&found))?;
            }
            Plan::Remove(filters) => {
                let removed = client.delete_acls(&filters).await?;
                if removed.is_empty() {
                    eprintln!("no ACL matched; nothing was removed");
                } else {
                    print(&acl_table(&removed))?;
                    eprintln!("removed {} ACL(s)", removed.len());
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AclCommand,
    }

    fn parse(args: &[&str]) -> AclCommand {
        let mut argv = vec!["acl"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").command
    }

    fn add(args: &[&str]) -> anyhow::Result<Vec<AclBinding>> {
        match parse(&[&["add"], args].concat()) {
            AclCommand::Add(a) => a.bindings(),
            other => panic!("{other:?}"),
        }
    }

    fn remove(args: &[&str]) -> anyhow::Result<Vec<AclBindingFilter>> {
        match parse(&[&["remove"], args].concat()) {
            AclCommand::Remove(a) => a.filters(),
            other => panic!("{other:?}"),
        }
    }

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation,
            permission,
        }
    }

    #[test]
    fn add_makes_one_binding_per_principal_operation_and_host() {
        let bindings = add(&[
            "--allow-principal",
            "User:alice",
            "--allow-principal",
            "User:bob",
            "--operation",
            "read",
            "--operation",
            "DescribeConfigs",
            "--topic",
            "orders",
        ])
        .expect("valid");
        assert_eq!(bindings.len(), 4);
        assert!(bindings.contains(&binding(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:bob",
            Operation::DescribeConfigs,
            Permission::Allow
        )));
        let denied = add(&[
            "--deny-principal",
            "User:mallory",
            "--deny-host",
            "10.0.0.1",
            "--operation",
            "ALL",
            "--group",
            "g",
            "--resource-pattern-type",
            "prefixed",
        ])
        .expect("valid");
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].host, "10.0.0.1");
        assert_eq!(denied[0].pattern_type, PatternType::Prefixed);
        assert_eq!(denied[0].permission, Permission::Deny);
    }

    #[test]
    fn producer_and_consumer_write_what_those_clients_need() {
        let bindings = add(&[
            "--allow-principal",
            "User:app",
            "--producer",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
            "--transactional-id",
            "tx",
        ])
        .expect("valid");
        let grants: Vec<(ResourceType, Operation)> = bindings
            .iter()
            .map(|b| (b.resource_type, b.operation))
            .collect();
        use Operation::*;
        use ResourceType::*;
        assert_eq!(
            grants,
            vec![
                (Topic, Read),
                (Topic, Write),
                (Topic, Create),
                (Topic, Describe),
                (Group, Read),
                (TransactionalId, Write),
                (TransactionalId, Describe),
            ]
        );
        let error = add(&[
            "--allow-principal",
            "User:app",
            "--consumer",
            "--topic",
            "t",
        ])
        .expect_err("needs a group");
        assert!(error.to_string().contains("--group"), "{error}");
    }

    #[test]
    fn add_refuses_what_kafka_acls_refuses() {
        for (args, needle) in [
            (
                &["--allow-principal", "User:a", "--operation", "read"][..],
                "exactly one resource",
            ),
            (
                &[
                    "--allow-principal",
                    "User:a",
                    "--operation",
                    "read",
                    "--topic",
                    "t",
                    "--group",
                    "g",
                ],
                "exactly one resource",
            ),
            (
                &["--allow-principal", "User:a", "--topic", "t"],
                "--operation",
            ),
            (
                &["--operation", "read", "--topic", "t"],
                "--allow-principal",
            ),
            (
                &[
                    "--allow-principal",
                    "alice",
                    "--operation",
                    "read",
                    "--topic",
                    "t",
                ],
                "principal",
            ),
            (
                &[
                    "--allow-principal",
                    "User:a",
                    "--operation",
                    "write",
                    "--group",
                    "g",
                ],
                "not an operation of a GROUP",
            ),
            (
                &[
                    "--allow-principal",
                    "User:a",
                    "--operation",
                    "read",
                    "--topic",
                    "t",
                    "--resource-pattern-type",
                    "match",
                ],
                "literal or prefixed",
            ),
            (
                &[
                    "--allow-principal",
                    "User:a",
                    "--operation",
                    "alter",
                    "--cluster",
                    "--resource-pattern-type",
                    "prefixed",
                ],
                "--cluster",
            ),
            (
                &[
                    "--allow-principal",
                    "User:a",
                    "--producer",
                    "--operation",
                    "read",
                    "--topic",
                    "t",
                ],
                "cannot be combined",
            ),
        ] {
            let error = add(args).expect_err("refused");
            assert!(format!("{error:#}").contains(needle), "{args:?}: {error:#}");
        }
        let cluster = add(&[
            "--allow-principal",
            "User:a",
            "--operation",
            "idempotent-write",
            "--cluster",
        ])
        .expect("valid");
        assert_eq!(cluster[0].resource_name, "kafka-cluster");
        assert_eq!(cluster[0].operation, Operation::IdempotentWrite);
    }

    #[test]
    fn unknown_operations_and_pattern_types_are_parse_errors() {
        assert!(Cli::try_parse_from(["acl", "add", "--operation", "fly"]).is_err());
        assert!(Cli::try_parse_from(["acl", "add", "--operation", "any"]).is_err());
        assert!(Cli::try_parse_from(["acl", "list", "--resource-pattern-type", "fuzzy"]).is_err());
        assert_eq!(
            parse_operation("cluster-action"),
            Ok(Operation::ClusterAction)
        );
        assert_eq!(
            parse_operation("ClusterAction"),
            Ok(Operation::ClusterAction)
        );
        assert_eq!(parse_pattern_type("MATCH"), Ok(PatternType::Match));
    }

    #[test]
    fn remove_refuses_to_remove_everything_without_force() {
        let error = remove(&[]).expect_err("refused");
        assert!(error.to_string().contains("--force"), "{error}");
        let error = remove(&["--operation", "read"]).expect_err("refused");
        assert!(error.to_string().contains("every ACL"), "{error}");
        assert_eq!(
            remove(&["--force"]).expect("forced"),
            vec![AclBindingFilter::any()]
        );
        let filters = remove(&["--topic", "t", "--resource-pattern-type", "prefixed"]).expect("ok");
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0].resource_type, ResourceType::Topic);
        assert_eq!(filters[0].pattern_type, PatternType::Prefixed);
        let filters = remove(&[
            "--allow-principal",
            "User:a",
            "--principal",
            "User:b",
            "--operation",
            "read",
            "--operation",
            "write",
        ])
        .expect("ok");
        assert_eq!(filters.len(), 4);
        assert!(
            filters
                .iter()
                .any(|f| f.principal.as_deref() == Some("User:a")
                    && f.permission == Permission::Allow
                    && f.operation == Operation::Write
                    && f.pattern_type == PatternType::Any)
        );
    }

    #[test]
    fn remove_producer_and_consumer_select_what_add_wrote() {
        let args = [
            "--allow-principal",
            "User:app",
            "--producer",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
            "--transactional-id",
            "tx",
        ];
        let added = add(&args).expect("valid");
        let filters = remove(&args).expect("valid");
        assert_eq!(filters.len(), added.len(), "{filters:?}");
        for binding in &added {
            assert!(
                filters.iter().any(|f| f.matches(binding)),
                "no filter removes {binding:?}"
            );
        }
        // The filters name the resource and operation: another topic's ACLs stay.
        let other = AclBinding {
            resource_name: "u".to_string(),
            ..added[0].clone()
        };
        assert!(!filters.iter().any(|f| f.matches(&other)));
        let everyone = remove(&["--consumer", "--topic", "t", "--group", "g"]).expect("ok");
        assert_eq!(everyone.len(), 3);
        assert!(everyone.iter().all(|f| f.principal.is_none()));
        for (args, needle) in [
            (&["--producer"][..], "--topic"),
            (&["--consumer", "--topic", "t"], "--group"),
            (
                &["--producer", "--topic", "t", "--operation", "read"],
                "cannot be combined",
            ),
            (
                &["--producer", "--topic", "t", "--deny-principal", "User:x"],
                "allow ACLs",
            ),
        ] {
            let error = remove(args).expect_err("refused");
            assert!(format!("{error:#}").contains(needle), "{args:?}: {error:#}");
        }
    }

    #[test]
    fn list_filters_default_to_literal_for_a_named_resource_and_any_otherwise() {
        let filters = |args: &[&str]| match parse(&[&["list"], args].concat()) {
            AclCommand::List(a) => a.filters().expect("valid"),
            other => panic!("{other:?}"),
        };
        assert_eq!(filters(&[]), vec![AclBindingFilter::any()]);
        let named = filters(&["--topic", "t"]);
        assert_eq!(named[0].pattern_type, PatternType::Literal);
        assert_eq!(named[0].resource_name.as_deref(), Some("t"));
        let by_principal = filters(&["--principal", "User:a", "--principal", "User:b"]);
        assert_eq!(by_principal.len(), 2);
    }

    #[test]
    fn the_table_has_a_header_and_a_row_per_binding() {
        let text = acl_table(&[binding(
            ResourceType::Topic,
            "orders",
            PatternType::Prefixed,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        )]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("RESOURCE-TYPE"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "TOPIC",
                "orders",
                "PREFIXED",
                "User:alice",
                "*",
                "READ",
                "ALLOW"
            ]
        );
    }
}
