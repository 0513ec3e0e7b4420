//! Kafka's authorisation model, without I/O: what an authenticated principal may do.
//!
//! Owns the ACL vocabulary with Kafka's wire ids and names ([`ResourceType`], [`PatternType`],
//! [`Operation`], [`Permission`]), one ACL ([`AclBinding`]) and its validation as CreateAcls
//! does it, the filters of DescribeAcls and DeleteAcls ([`AclBindingFilter`]), the in-memory
//! [`Authorizer`] the broker asks on every request, and the record format ACLs are stored as in
//! an internal compacted topic ([`encode`], [`key`], [`decode`]).
//!
//! It must not do I/O, log, or know about requests: the broker maps each Kafka API to the
//! (operation, resource) pairs it checks, stores and replays the records, and writes the audit
//! log from the [`Decision`] returned here.
//!
//! The rules follow Kafka's `StandardAuthorizer` (KRaft) exactly:
//!
//! - a configured super user is allowed everything, whatever the ACLs say;
//! - the ACLs that apply to a resource are the literal ones with its name, the literal wildcard
//!   `*` of its type, and the prefixed ones whose name starts its name;
//! - an ACL applies to a request when its principal is the request's or `User:*`, its host is
//!   the client's address or `*`, and its operation is the one asked, or `ALL`; an ALLOW (never a
//!   DENY) of READ, WRITE, DELETE or ALTER also grants DESCRIBE, and an ALLOW of ALTER_CONFIGS also
//!   grants DESCRIBE_CONFIGS;
//! - any applicable DENY wins over every ALLOW;
//! - when no ACL at all names the resource, the answer is `allow.everyone.if.no.acl.found`
//!   (false by default); when some do but none allows, the answer is no.
//!
//! Kafka's authorizer knows no other implication: IDEMPOTENT_WRITE is not implied by a topic
//! WRITE inside the authorizer. Since Kafka 3.0 the broker's InitProducerId handler allows an
//! idempotent producer with IDEMPOTENT_WRITE on the cluster *or* WRITE on any topic, which is
//! [`Authorizer::authorize_by_resource_type`]; that choice belongs to the broker.
//!
//! One deliberate difference: hosts that are IP addresses compare as addresses, not strings, so
//! an ACL written for Kafka as `0:0:0:0:0:0:0:1` (Java's form) matches a client Rust prints as
//! `::1`, and an IPv4-mapped IPv6 client matches its IPv4 ACL.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::Arc;

/// The resource name (and host) that matches every name in a literal ACL.
pub const WILDCARD: &str = "*";

/// The principal of ACLs that apply to every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The only name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Name of the internal compacted topic that holds one record per ACL (a suggestion for the
/// broker, which owns the topic).
pub const ACLS_TOPIC: &str = "_acls";

/// Kafka's INVALID_REQUEST error code.
pub const INVALID_REQUEST: i16 = 42;

/// Kafka's UNKNOWN_SERVER_ERROR error code.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;

/// The resource name Kafka's `authorizeByResourceType` first authorizes, so that super users and
/// `allow.everyone.if.no.acl.found` answer before the ACLs are scanned.
const BY_RESOURCE_TYPE_PROBE: &str = "hardcode";

/// Version of the stored key and value format.
const RECORD_VERSION: u32 = 1;

/// Defines one of Kafka's ACL enums: wire id (int8), Kafka's Java constant name, lookups.
macro_rules! kafka_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $id:literal, $kafka_name:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in wire id order.
            pub const VALUES: &'static [$name] = &[$($name::$variant),+];

            /// The value with this wire id; `Unknown` for an id this broker does not know, as
            /// Kafka's `fromCode`.
            pub fn from_id(id: i8) -> $name {
                match id {
                    $( $id => $name::$variant, )+
                    _ => $name::Unknown,
                }
            }

            /// The wire id, as CreateAcls, DescribeAcls and DeleteAcls carry it.
            pub fn id(self) -> i8 {
                match self {
                    $( $name::$variant => $id, )+
                }
            }

            /// Kafka's name for it (the Java enum constant), as `kafka-acls` prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $kafka_name, )+
                }
            }

            /// The value with exactly Kafka's name; used by the storage format.
            fn from_kafka_name(name: &str) -> Option<$name> {
                match name {
                    $( $kafka_name => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = AclError;

            /// Parses Kafka's name case-insensitively, with or without `_` or `-` between
            /// words: `DESCRIBE_CONFIGS` (Java's `fromString`), `DescribeConfigs` (the
            /// `kafka-acls` CLI), `describe-configs`.
            fn from_str(value: &str) -> Result<$name, AclError> {
                let wanted = normalize_name(value);
                $name::VALUES
                    .iter()
                    .copied()
                    .find(|candidate| normalize_name(candidate.name()) == wanted)
                    .ok_or_else(|| AclError::UnknownName {
                        kind: $kind,
                        name: value.to_owned(),
                        expected: $name::VALUES
                            .iter()
                            .map(|value| value.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

/// Lowercase, without `_`, `-` or surrounding whitespace.
fn normalize_name(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

kafka_enum! {
    /// The kind of resource an ACL protects (Kafka's `ResourceType`).
    ResourceType, "resource type" {
        /// An id this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// In a filter: any resource type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster as a whole; its only name is [`CLUSTER_NAME`].
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (for CreateTokens and DescribeTokens on behalf of another user).
        User = 7, "USER";
    }
}

kafka_enum! {
    /// How an ACL's resource name matches names (Kafka's `PatternType`).
    PatternType, "pattern type" {
        /// An id this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// In a filter: any pattern type, the name compared exactly.
        Any = 1, "ANY";
        /// In a filter: every pattern that would apply to the named resource.
        Match = 2, "MATCH";
        /// The name exactly; `*` is every name.
        Literal = 3, "LITERAL";
        /// Every name that starts with the name.
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// What an ACL allows or denies (Kafka's `AclOperation`).
    Operation, "operation" {
        /// An id this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// In a filter: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read (fetch, join a group, commit offsets).
        Read = 3, "READ";
        /// Write (produce).
        Write = 4, "WRITE";
        /// Create (topics).
        Create = 5, "CREATE";
        /// Delete (topics, records, groups).
        Delete = 6, "DELETE";
        /// Alter (partitions, ACLs).
        Alter = 7, "ALTER";
        /// Describe (metadata, offsets, groups).
        Describe = 8, "DESCRIBE";
        /// Inter-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Read configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Change configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce (InitProducerId without a transactional id).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// Two-phase commit with a transactional id (KIP-939, Kafka 4.1).
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

kafka_enum! {
    /// Whether an ACL allows or denies (Kafka's `AclPermissionType`).
    Permission, "permission type" {
        /// An id this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// In a filter: either.
        Any = 1, "ANY";
        /// Denies; wins over any allow.
        Deny = 2, "DENY";
        /// Allows.
        Allow = 3, "ALLOW";
    }
}

impl ResourceType {
    /// A type an ACL can name: not `Unknown` or the filter value `Any`.
    pub fn is_specific(self) -> bool {
        !matches!(self, ResourceType::Unknown | ResourceType::Any)
    }
}

impl PatternType {
    /// A type an ACL can have: `Literal` or `Prefixed` (Kafka's `isSpecific`).
    pub fn is_specific(self) -> bool {
        matches!(self, PatternType::Literal | PatternType::Prefixed)
    }
}

impl Operation {
    /// An operation an ACL can name: not `Unknown` or the filter value `Any`.
    pub fn is_specific(self) -> bool {
        !matches!(self, Operation::Unknown | Operation::Any)
    }

    /// Whether an ALLOW ACL for `self` grants `requested`: the same operation, `All`, or one of
    /// Kafka's implications (READ, WRITE, DELETE and ALTER grant DESCRIBE; ALTER_CONFIGS grants
    /// DESCRIBE_CONFIGS). A DENY ACL only denies its own operation, or everything for `All`.
    pub fn implies(self, requested: Operation) -> bool {
        self == Operation::All
            || self == requested
            || match requested {
                Operation::Describe => matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ),
                Operation::DescribeConfigs => self == Operation::AlterConfigs,
                _ => false,
            }
    }
}

impl Permission {
    /// A permission an ACL can have: `Allow` or `Deny`.
    pub fn is_specific(self) -> bool {
        matches!(self, Permission::Allow | Permission::Deny)
    }
}

/// What is wrong with an ACL, a filter, a name or a stored record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The CLUSTER resource named something other than `kafka-cluster`.
    #[error("the only valid name for the CLUSTER resource is kafka-cluster, not {name:?}")]
    InvalidClusterName {
        /// The name given.
        name: String,
    },
    /// An empty resource name.
    #[error("invalid empty resource name: name the resource, a prefix, or * for every name")]
    EmptyResourceName,
    /// A resource type an ACL cannot have.
    #[error(
        "invalid resource type {resource_type} in an ACL: use TOPIC, GROUP, CLUSTER, \
         TRANSACTIONAL_ID, DELEGATION_TOKEN or USER"
    )]
    InvalidResourceType {
        /// The type given.
        resource_type: ResourceType,
    },
    /// A pattern type an ACL cannot have (ANY and MATCH are for filters).
    #[error("invalid pattern type {pattern_type} in an ACL: use LITERAL or PREFIXED")]
    InvalidPatternType {
        /// The type given.
        pattern_type: PatternType,
    },
    /// An operation an ACL cannot have (ANY is for filters).
    #[error("invalid operation {operation} in an ACL: name one operation, or ALL")]
    InvalidOperation {
        /// The operation given.
        operation: Operation,
    },
    /// A permission an ACL cannot have (ANY is for filters).
    #[error("invalid permission type {permission} in an ACL: use ALLOW or DENY")]
    InvalidPermission {
        /// The permission given.
        permission: Permission,
    },
    /// A principal that is not `Type:name`.
    #[error(
        "expected a principal in format principalType:principalName (e.g. User:alice) but got \
         {principal:?}"
    )]
    InvalidPrincipal {
        /// The principal given.
        principal: String,
    },
    /// A filter with an UNKNOWN field, which would match nothing.
    #[error("invalid ACL filter: {field} is UNKNOWN; use a known value or ANY")]
    UnknownFilterField {
        /// The field: "resource type", "pattern type", "operation" or "permission type".
        field: &'static str,
    },
    /// A name that is none of Kafka's names for the kind.
    #[error("unknown {kind} {name:?}: use one of {expected}")]
    UnknownName {
        /// What was being parsed.
        kind: &'static str,
        /// The name given.
        name: String,
        /// Kafka's names for the kind.
        expected: String,
    },
    /// A stored ACL record that cannot be read.
    #[error("malformed ACL record: {reason}")]
    MalformedRecord {
        /// What is wrong.
        reason: String,
    },
}

impl AclError {
    /// The Kafka error code a client sees for this error (the broker's error mapping uses it).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            AclError::InvalidClusterName { .. }
            | AclError::EmptyResourceName
            | AclError::InvalidResourceType { .. }
            | AclError::InvalidPatternType { .. }
            | AclError::InvalidOperation { .. }
            | AclError::InvalidPermission { .. }
            | AclError::InvalidPrincipal { .. }
            | AclError::UnknownFilterField { .. }
            | AclError::UnknownName { .. } => INVALID_REQUEST,
            // A stored record is the broker's own data, never a client's mistake.
            AclError::MalformedRecord { .. } => UNKNOWN_SERVER_ERROR,
        }
    }
}

/// Splits a principal `Type:name` at its first `:` (Kafka's `SecurityUtils.parseKafkaPrincipal`).
///
/// Unlike Kafka, an empty type or name is refused: no authenticated principal has one, so such
/// an ACL could never apply.
pub fn parse_principal(principal: &str) -> Result<(&str, &str), AclError> {
    match principal.split_once(':') {
        Some((principal_type, name)) if !principal_type.is_empty() && !name.is_empty() => {
            Ok((principal_type, name))
        }
        _ => Err(AclError::InvalidPrincipal {
            principal: principal.to_owned(),
        }),
    }
}

/// One ACL: a resource pattern and an access control entry (Kafka's `AclBinding`).
///
/// Ordered by resource first, so listings group the ACLs of one resource together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource name, prefix, or `*`.
    pub resource_name: String,
    /// How the name matches: `Literal` or `Prefixed`.
    pub pattern_type: PatternType,
    /// Who: `Type:name`, e.g. `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// From where: a client IP address, or `*`.
    pub host: String,
    /// What.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Checks the binding as Kafka's CreateAcls does; every error maps to INVALID_REQUEST.
    ///
    /// A prefixed `*` is accepted as Kafka accepts it: it applies to names starting with `*`,
    /// not to every name.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(AclError::InvalidClusterName {
                name: self.resource_name.clone(),
            });
        }
        if self.resource_name.is_empty() {
            return Err(AclError::EmptyResourceName);
        }
        if !self.resource_type.is_specific() {
            return Err(AclError::InvalidResourceType {
                resource_type: self.resource_type,
            });
        }
        if !self.pattern_type.is_specific() {
            return Err(AclError::InvalidPatternType {
                pattern_type: self.pattern_type,
            });
        }
        if !self.operation.is_specific() {
            return Err(AclError::InvalidOperation {
                operation: self.operation,
            });
        }
        if !self.permission.is_specific() {
            return Err(AclError::InvalidPermission {
                permission: self.permission,
            });
        }
        parse_principal(&self.principal)?;
        Ok(())
    }

    /// The filter that matches exactly this binding.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission: self.permission,
        }
    }
}

impl fmt::Display for AclBinding {
    /// Kafka's `AclBinding.toString`, which audit logs and `kafka-acls` print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(pattern=ResourcePattern(resourceType={}, name={}, patternType={}), \
             entry=(principal={}, host={}, operation={}, permissionType={}))",
            self.resource_type,
            self.resource_name,
            self.pattern_type,
            self.principal,
            self.host,
            self.operation,
            self.permission
        )
    }
}

/// Selects ACLs for DescribeAcls and DeleteAcls (Kafka's `AclBindingFilter`).
///
/// `None` names, principals and hosts match anything; `Any` enum values match anything. The
/// principal and host compare exactly: a filter for `User:alice` does not select `User:*` ACLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBindingFilter {
    /// A resource type, or `Any`.
    pub resource_type: ResourceType,
    /// A name, or `None` for any.
    pub resource_name: Option<String>,
    /// `Literal` or `Prefixed` for that type with the name exactly, `Any` for any type with the
    /// name exactly, `Match` for every ACL that applies to the named resource.
    pub pattern_type: PatternType,
    /// A principal, or `None` for any.
    pub principal: Option<String>,
    /// A host, or `None` for any.
    pub host: Option<String>,
    /// An operation, or `Any`.
    pub operation: Operation,
    /// A permission, or `Any`.
    pub permission: Permission,
}

impl AclBindingFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// Refuses a filter with an UNKNOWN field, as Kafka's DescribeAcls and DeleteAcls do
    /// (INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), AclError> {
        let unknown = if self.resource_type == ResourceType::Unknown {
            Some("resource type")
        } else if self.pattern_type == PatternType::Unknown {
            Some("pattern type")
        } else if self.operation == Operation::Unknown {
            Some("operation")
        } else if self.permission == Permission::Unknown {
            Some("permission type")
        } else {
            None
        };
        match unknown {
            Some(field) => Err(AclError::UnknownFilterField { field }),
            None => Ok(()),
        }
    }

    /// Whether the filter selects the binding (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(binding) && self.matches_entry(binding)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, binding: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != binding.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != binding.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == binding.pattern_type {
            return *name == binding.resource_name;
        }
        // MATCH: the binding applies to the resource the filter names.
        match binding.pattern_type {
            PatternType::Literal => {
                *name == binding.resource_name || binding.resource_name == WILDCARD
            }
            PatternType::Prefixed => name.starts_with(binding.resource_name.as_str()),
            // Kafka throws here; a valid binding is never of another type.
            PatternType::Unknown | PatternType::Any | PatternType::Match => false,
        }
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, binding: &AclBinding) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|principal| *principal == binding.principal)
            && self.host.as_ref().is_none_or(|host| *host == binding.host)
            && (self.operation == Operation::Any || self.operation == binding.operation)
            && (self.permission == Permission::Any || self.permission == binding.permission)
    }
}

impl Default for AclBindingFilter {
    fn default() -> AclBindingFilter {
        AclBindingFilter::any()
    }
}

impl fmt::Display for AclBindingFilter {
    /// Kafka's `AclBindingFilter.toString`, with `<any>` for an absent field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |value: &Option<String>| value.clone().unwrap_or_else(|| "<any>".to_owned());
        write!(
            f,
            "(patternFilter=ResourcePattern(resourceType={}, name={}, patternType={}), \
             entryFilter=(principal={}, host={}, operation={}, permissionType={}))",
            self.resource_type,
            any(&self.resource_name),
            self.pattern_type,
            any(&self.principal),
            any(&self.host),
            self.operation,
            self.permission
        )
    }
}

/// The authorizer's settings, under Kafka's config names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:admin`) allowed everything, whatever the ACLs say.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found`: allow a request on a resource no ACL names. Off by
    /// default: once authorisation is on, what is not allowed is denied.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users` as Kafka does: principals separated by `;`, blanks ignored.
    pub fn parse_super_users(value: &str) -> Result<BTreeSet<String>, AclError> {
        value
            .split(';')
            .map(str::trim)
            .filter(|principal| !principal.is_empty())
            .map(|principal| parse_principal(principal).map(|_| principal.to_owned()))
            .collect()
    }
}

/// The answer to one authorisation question, with the rule that gave it, for audit logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The principal is a super user.
    SuperUser,
    /// This ALLOW ACL applies and no DENY does.
    AllowedByAcl(Arc<AclBinding>),
    /// This DENY ACL applies.
    DeniedByAcl(Arc<AclBinding>),
    /// No ACL names the resource: the answer is `allow.everyone.if.no.acl.found`.
    NoAclFound {
        /// The configured answer.
        allowed: bool,
    },
    /// ACLs name the resource but none allows this principal, host and operation.
    NoMatchingAllow,
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        match self {
            Decision::SuperUser | Decision::AllowedByAcl(_) => true,
            Decision::NoAclFound { allowed } => *allowed,
            Decision::DeniedByAcl(_) | Decision::NoMatchingAllow => false,
        }
    }

    /// The ACL that decided, if one did.
    pub fn binding(&self) -> Option<&AclBinding> {
        match self {
            Decision::AllowedByAcl(binding) | Decision::DeniedByAcl(binding) => Some(binding),
            Decision::SuperUser | Decision::NoAclFound { .. } | Decision::NoMatchingAllow => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::SuperUser => f.write_str("allowed: super user"),
            Decision::AllowedByAcl(binding) => write!(f, "allowed by ACL {binding}"),
            Decision::DeniedByAcl(binding) => write!(f, "denied by ACL {binding}"),
            Decision::NoAclFound { allowed: true } => {
                f.write_str("allowed: no ACL for the resource and allow.everyone.if.no.acl.found")
            }
            Decision::NoAclFound { allowed: false } => {
                f.write_str("denied: no ACL for the resource")
            }
            Decision::NoMatchingAllow => f.write_str("denied: no ACL allows it"),
        }
    }
}

/// One indexed ACL, with its host parsed once.
#[derive(Debug)]
struct Entry {
    binding: Arc<AclBinding>,
    /// The host as an address, when it is one.
    host_ip: Option<IpAddr>,
}

/// The ACLs of one resource pattern, by principal. Never empty while indexed.
#[derive(Debug, Default)]
struct Bucket {
    by_principal: HashMap<String, Vec<Entry>>,
}

/// The ACLs of one resource type.
#[derive(Debug, Default)]
struct TypeIndex {
    /// Literal patterns by name, `*` included.
    literal: HashMap<String, Bucket>,
    /// Prefixed patterns by prefix, ordered so the prefixes of a name are found by a few range
    /// lookups rather than a scan.
    prefixed: BTreeMap<String, Bucket>,
}

impl TypeIndex {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.prefixed.is_empty()
    }

    /// The buckets of the prefixed patterns that are prefixes of `name`, longest first.
    fn prefixes_of<'a>(&'a self, name: &'a str) -> Prefixes<'a> {
        Prefixes {
            map: &self.prefixed,
            name,
            upper: Some(Bound::Included(name)),
        }
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.literal.values().chain(self.prefixed.values())
    }
}

/// Walks a sorted map of prefixes downwards from a name, as Kafka's `StandardAuthorizerData`
/// does: every key that is a prefix of the name sorts at or below it, and a key that is not
/// lets the walk jump to the part of the name they share.
struct Prefixes<'a> {
    map: &'a BTreeMap<String, Bucket>,
    name: &'a str,
    /// Upper bound of the keys still to look at; `None` once done.
    upper: Option<Bound<&'a str>>,
}

impl<'a> Iterator for Prefixes<'a> {
    type Item = &'a Bucket;

    fn next(&mut self) -> Option<&'a Bucket> {
        loop {
            let upper = self.upper.take()?;
            let (key, bucket) = self
                .map
                .range::<str, _>((Bound::Unbounded, upper))
                .next_back()?;
            let shared = shared_prefix_len(key, self.name);
            if shared == key.len() {
                // Every shorter prefix of the name sorts below this key.
                self.upper = Some(Bound::Excluded(key.as_str()));
                return Some(bucket);
            }
            // `key` sorts below the name and differs from it at `shared`: a prefix of the name
            // longer than `shared` would sort between them, so none is left; the next candidate
            // is the name's first `shared` bytes.
            let mut end = shared;
            while !self.name.is_char_boundary(end) {
                end -= 1;
            }
            self.upper = Some(Bound::Included(&self.name[..end]));
        }
    }
}

/// How many leading bytes two strings share.
fn shared_prefix_len(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// The address a host string names, in the form that compares equal across notations.
fn host_ip(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The client side of one authorisation question.
struct Request<'a> {
    principal: &'a str,
    host: &'a str,
    host_ip: Option<IpAddr>,
}

impl Request<'_> {
    fn new<'a>(principal: &'a str, host: &'a str) -> Request<'a> {
        Request {
            principal,
            host,
            host_ip: host_ip(host),
        }
    }

    /// The principals whose ACLs apply: the request's and `User:*`.
    fn principals(&self) -> impl Iterator<Item = &str> {
        let wildcard = (self.principal != WILDCARD_PRINCIPAL).then_some(WILDCARD_PRINCIPAL);
        std::iter::once(self.principal).chain(wildcard)
    }

    fn host_matches(&self, entry: &Entry) -> bool {
        let host = entry.binding.host.as_str();
        host == WILDCARD
            || host == self.host
            || (entry.host_ip.is_some() && entry.host_ip == self.host_ip)
    }
}

/// What the ACLs of one resource said so far.
#[derive(Default)]
struct Scan<'a> {
    /// Some ACL names the resource, whoever it is for.
    resource_has_acls: bool,
    /// The first applicable ALLOW, most specific pattern first.
    allow: Option<&'a Arc<AclBinding>>,
}

impl<'a> Scan<'a> {
    /// Looks at one pattern's ACLs; returns the first applicable DENY.
    fn check(
        &mut self,
        bucket: &'a Bucket,
        request: &Request<'_>,
        operation: Operation,
    ) -> Option<&'a Arc<AclBinding>> {
        self.resource_has_acls = true;
        for principal in request.principals() {
            let Some(entries) = bucket.by_principal.get(principal) else {
                continue;
            };
            for entry in entries.iter().filter(|entry| request.host_matches(entry)) {
                let binding = &entry.binding;
                match binding.permission {
                    Permission::Deny
                        if binding.operation == Operation::All
                            || binding.operation == operation =>
                    {
                        return Some(binding);
                    }
                    Permission::Allow if binding.operation.implies(operation) => {
                        self.allow.get_or_insert(binding);
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

/// Kafka's ACL authorizer over bindings held in memory, indexed by resource type, then by
/// literal name (a hash map) or prefix (a sorted map), then by principal, so a request looks at
/// the ACLs of its own resource and principal only.
///
/// Mutations take `&mut self`; the broker shares it behind a lock or swaps a rebuilt copy.
#[derive(Debug, Default)]
pub struct Authorizer {
    config: AuthorizerConfig,
    /// Every binding once, in listing order.
    all: BTreeSet<Arc<AclBinding>>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

impl Authorizer {
    /// An authorizer with no ACLs.
    pub fn new(config: AuthorizerConfig) -> Authorizer {
        Authorizer {
            config,
            all: BTreeSet::new(),
            by_type: HashMap::new(),
        }
    }

    /// An authorizer holding these bindings; fails on the first invalid one.
    pub fn with_bindings(
        config: AuthorizerConfig,
        bindings: impl IntoIterator<Item = AclBinding>,
    ) -> Result<Authorizer, AclError> {
        let mut authorizer = Authorizer::new(config);
        for binding in bindings {
            authorizer.add(binding)?;
        }
        Ok(authorizer)
    }

    /// The settings.
    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    /// Replaces the settings (super users, default), keeping the ACLs.
    pub fn set_config(&mut self, config: AuthorizerConfig) {
        self.config = config;
    }

    /// How many ACLs are held.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether no ACL is held.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Adds a binding after validating it; returns false if it was already there (adding an
    /// existing ACL succeeds without change, as in Kafka).
    pub fn add(&mut self, binding: AclBinding) -> Result<bool, AclError> {
        binding.validate()?;
        if self.all.contains(&binding) {
            return Ok(false);
        }
        let binding = Arc::new(binding);
        let index = self.by_type.entry(binding.resource_type).or_default();
        let bucket = match binding.pattern_type {
            PatternType::Literal => index
                .literal
                .entry(binding.resource_name.clone())
                .or_default(),
            PatternType::Prefixed => index
                .prefixed
                .entry(binding.resource_name.clone())
                .or_default(),
            // Refused by `validate` above.
            PatternType::Unknown | PatternType::Any | PatternType::Match => {
                return Err(AclError::InvalidPatternType {
                    pattern_type: binding.pattern_type,
                });
            }
        };
        bucket
            .by_principal
            .entry(binding.principal.clone())
            .or_default()
            .push(Entry {
                host_ip: host_ip(&binding.host),
                binding: Arc::clone(&binding),
            });
        self.all.insert(binding);
        Ok(true)
    }

    /// Removes a binding; returns false if it was not there.
    pub fn remove(&mut self, binding: &AclBinding) -> bool {
        if !self.all.remove(binding) {
            return false;
        }
        let Some(index) = self.by_type.get_mut(&binding.resource_type) else {
            return true;
        };
        match binding.pattern_type {
            PatternType::Literal => {
                if let Some(bucket) = index.literal.get_mut(&binding.resource_name) {
                    if bucket.remove(binding) {
                        index.literal.remove(&binding.resource_name);
                    }
                }
            }
            PatternType::Prefixed => {
                if let Some(bucket) = index.prefixed.get_mut(&binding.resource_name) {
                    if bucket.remove(binding) {
                        index.prefixed.remove(&binding.resource_name);
                    }
                }
            }
            PatternType::Unknown | PatternType::Any | PatternType::Match => {}
        }
        if index.is_empty() {
            self.by_type.remove(&binding.resource_type);
        }
        true
    }

    /// Removes every binding the filter matches and returns them, in listing order (DeleteAcls).
    /// Validate the filter first: one with an UNKNOWN field matches nothing.
    pub fn remove_matching(&mut self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        let removed = self.bindings(filter);
        for binding in &removed {
            self.remove(binding);
        }
        removed
    }

    /// The bindings the filter matches, in listing order (DescribeAcls).
    pub fn bindings(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.all
            .iter()
            .filter(|binding| filter.matches(binding))
            .map(|binding| AclBinding::clone(binding))
            .collect()
    }

    /// Applies a stored record: a put adds the binding, a tombstone removes it.
    pub fn apply(&mut self, record: AclRecord) -> Result<(), AclError> {
        match record {
            AclRecord::Put(binding) => self.add(binding).map(|_| ()),
            AclRecord::Delete(binding) => {
                self.remove(&binding);
                Ok(())
            }
        }
    }

    /// May `principal` (`User:alice`), connected from `host` (the client's IP address), perform
    /// `operation` on the resource? The resource is one resource, named literally, and
    /// `operation` a specific one (the broker passes constants).
    ///
    /// Looks at the literal ACLs of the name, the prefixed ACLs of its prefixes (longest first)
    /// and the wildcard ACLs, each for the principal and `User:*` only. A DENY returns at once;
    /// otherwise the first ALLOW found, in that order, is the one reported.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> Decision {
        if self.config.super_users.contains(principal) {
            return Decision::SuperUser;
        }
        let Some(index) = self.by_type.get(&resource_type) else {
            return self.no_acl_found();
        };
        let request = Request::new(principal, host);
        let mut scan = Scan::default();
        let literal = index.literal.get(resource_name);
        let wildcard = (resource_name != WILDCARD)
            .then(|| index.literal.get(WILDCARD))
            .flatten();
        let buckets = literal
            .into_iter()
            .chain(index.prefixes_of(resource_name))
            .chain(wildcard);
        for bucket in buckets {
            if let Some(deny) = scan.check(bucket, &request, operation) {
                return Decision::DeniedByAcl(Arc::clone(deny));
            }
        }
        match scan.allow {
            Some(allow) => Decision::AllowedByAcl(Arc::clone(allow)),
            None if !scan.resource_has_acls => self.no_acl_found(),
            None => Decision::NoMatchingAllow,
        }
    }

    /// May `principal` perform `operation` on at least one resource of `resource_type`? Kafka's
    /// default `Authorizer.authorizeByResourceType`, which the broker uses for InitProducerId
    /// without a transactional id: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
    ///
    /// Only ACLs for the operation itself or ALL count (no implied operations). Allowed when a
    /// probe resource is allowed (super users, `allow.everyone.if.no.acl.found`), or when an
    /// ALLOW applies that no DENY dominates: a literal `*` DENY dominates everything, a literal
    /// DENY its own name, a prefixed DENY every pattern its prefix starts.
    pub fn authorize_by_resource_type(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> Decision {
        let probe = self.authorize(
            principal,
            host,
            operation,
            resource_type,
            BY_RESOURCE_TYPE_PROBE,
        );
        if probe.is_allowed() {
            return probe;
        }
        let Some(index) = self.by_type.get(&resource_type) else {
            return probe;
        };
        let request = Request::new(principal, host);
        let mut denied_literal = HashSet::new();
        let mut denied_prefixed = HashSet::new();
        let mut allowed = Vec::new();
        let mut wildcard_allow = None;
        for bucket in index.buckets() {
            for principal in request.principals() {
                let Some(entries) = bucket.by_principal.get(principal) else {
                    continue;
                };
                for entry in entries.iter().filter(|entry| request.host_matches(entry)) {
                    let binding = &entry.binding;
                    if binding.operation != operation && binding.operation != Operation::All {
                        continue;
                    }
                    let literal = binding.pattern_type == PatternType::Literal;
                    let name = binding.resource_name.as_str();
                    match binding.permission {
                        Permission::Deny if literal && name == WILDCARD => {
                            return Decision::DeniedByAcl(Arc::clone(binding));
                        }
                        Permission::Deny if literal => {
                            denied_literal.insert(name);
                        }
                        Permission::Deny => {
                            denied_prefixed.insert(name);
                        }
                        Permission::Allow if literal && name == WILDCARD => {
                            wildcard_allow.get_or_insert(binding);
                        }
                        Permission::Allow => allowed.push(binding),
                        Permission::Unknown | Permission::Any => {}
                    }
                }
            }
        }
        if let Some(binding) = wildcard_allow {
            return Decision::AllowedByAcl(Arc::clone(binding));
        }
        // Kafka looks at the literal ALLOWs first, then the prefixed ones.
        allowed.sort_by_key(|binding| binding.pattern_type != PatternType::Literal);
        let undominated = allowed.into_iter().find(|binding| {
            let name = binding.resource_name.as_str();
            let literal_denied =
                binding.pattern_type == PatternType::Literal && denied_literal.contains(name);
            let prefix_denied = name
                .char_indices()
                .map(|(start, c)| &name[..start + c.len_utf8()])
                .any(|prefix| denied_prefixed.contains(prefix));
            !literal_denied && !prefix_denied
        });
        match undominated {
            Some(binding) => Decision::AllowedByAcl(Arc::clone(binding)),
            None => Decision::NoMatchingAllow,
        }
    }

    fn no_acl_found(&self) -> Decision {
        Decision::NoAclFound {
            allowed: self.config.allow_everyone_if_no_acl_found,
        }
    }
}

impl Bucket {
    /// Removes the binding's entry; returns true when the bucket is left empty.
    fn remove(&mut self, binding: &AclBinding) -> bool {
        if let Some(entries) = self.by_principal.get_mut(&binding.principal) {
            entries.retain(|entry| *entry.binding != *binding);
            if entries.is_empty() {
                self.by_principal.remove(&binding.principal);
            }
        }
        self.by_principal.is_empty()
    }
}

/// One record of the ACL topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRecord {
    /// The binding exists.
    Put(AclBinding),
    /// The binding was removed (a tombstone).
    Delete(AclBinding),
}

/// The stored key: the whole binding, so each ACL is its own key and compaction keeps the
/// latest put or tombstone of it. Fields serialise in declaration order, so the bytes of a
/// binding never change. Kafka's names, not ids, so operators can read the topic.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey<'a> {
    version: u32,
    resource_type: &'a str,
    #[serde(borrow)]
    resource_name: std::borrow::Cow<'a, str>,
    pattern_type: &'a str,
    #[serde(borrow)]
    principal: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    host: std::borrow::Cow<'a, str>,
    operation: &'a str,
    permission_type: &'a str,
}

/// The stored value of a live ACL; a tombstone (no value) removes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredValue {
    version: u32,
}

/// The key of a binding's record in the ACL topic; equal bindings give equal bytes.
pub fn key(binding: &AclBinding) -> Vec<u8> {
    let stored = StoredKey {
        version: RECORD_VERSION,
        resource_type: binding.resource_type.name(),
        resource_name: binding.resource_name.as_str().into(),
        pattern_type: binding.pattern_type.name(),
        principal: binding.principal.as_str().into(),
        host: binding.host.as_str().into(),
        operation: binding.operation.name(),
        permission_type: binding.permission.name(),
    };
    json_bytes(&stored)
}

/// The key and value of the record that stores a binding. Its tombstone is `key(binding)` with
/// no value.
pub fn encode(binding: &AclBinding) -> (Vec<u8>, Vec<u8>) {
    let value = StoredValue {
        version: RECORD_VERSION,
    };
    (key(binding), json_bytes(&value))
}

/// Serialises a record struct made of strings and integers.
fn json_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising strings and integers into a Vec has no failure case; an empty result would
    // fail to decode rather than corrupt anything.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads a record of the ACL topic; `value` is `None` for a tombstone. Bytes from disk are not
/// trusted: anything unreadable, of another version, or not a valid ACL is an error.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<AclRecord, AclError> {
    let stored: StoredKey<'_> = serde_json::from_slice(key)
        .map_err(|err| malformed(format!("key is not an ACL key: {err}")))?;
    if stored.version != RECORD_VERSION {
        return Err(malformed(format!(
            "key version {} is not {RECORD_VERSION}",
            stored.version
        )));
    }
    let binding = AclBinding {
        resource_type: stored_enum(ResourceType::from_kafka_name, stored.resource_type)?,
        resource_name: stored.resource_name.into_owned(),
        pattern_type: stored_enum(PatternType::from_kafka_name, stored.pattern_type)?,
        principal: stored.principal.into_owned(),
        host: stored.host.into_owned(),
        operation: stored_enum(Operation::from_kafka_name, stored.operation)?,
        permission: stored_enum(Permission::from_kafka_name, stored.permission_type)?,
    };
    binding
        .validate()
        .map_err(|err| malformed(format!("stored ACL {binding} is invalid: {err}")))?;
    let Some(value) = value else {
        return Ok(AclRecord::Delete(binding));
    };
    let stored: StoredValue = serde_json::from_slice(value)
        .map_err(|err| malformed(format!("value is not an ACL value: {err}")))?;
    if stored.version != RECORD_VERSION {
        return Err(malformed(format!(
            "value version {} is not {RECORD_VERSION}",
            stored.version
        )));
    }
    Ok(AclRecord::Put(binding))
}

fn stored_enum<T>(parse: fn(&str) -> Option<T>, name: &str) -> Result<T, AclError> {
    parse(name).ok_or_else(|| malformed(format!("unknown name {name:?}")))
}

fn malformed(reason: String) -> AclError {
    AclError::MalformedRecord { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        }
    }

    fn allow_topic(name: &str, pattern: PatternType, principal: &str, op: Operation) -> AclBinding {
        binding(
            ResourceType::Topic,
            name,
            pattern,
            principal,
            WILDCARD,
            op,
            Permission::Allow,
        )
    }

    fn deny_topic(name: &str, pattern: PatternType, principal: &str, op: Operation) -> AclBinding {
        AclBinding {
            permission: Permission::Deny,
            ..allow_topic(name, pattern, principal, op)
        }
    }

    fn with_acls(bindings: Vec<AclBinding>) -> Authorizer {
        Authorizer::with_bindings(AuthorizerConfig::default(), bindings).expect("valid bindings")
    }

    fn topic_allowed(authorizer: &Authorizer, principal: &str, op: Operation, topic: &str) -> bool {
        authorizer
            .authorize(principal, "10.0.0.1", op, ResourceType::Topic, topic)
            .is_allowed()
    }

    const ALICE: &str = "User:alice";
    const BOB: &str = "User:bob";

    #[test]
    fn enums_carry_kafkas_wire_ids_and_names() {
        let operations: Vec<(i8, &str)> = Operation::VALUES
            .iter()
            .map(|op| (op.id(), op.name()))
            .collect();
        assert_eq!(
            operations,
            [
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "ALL"),
                (3, "READ"),
                (4, "WRITE"),
                (5, "CREATE"),
                (6, "DELETE"),
                (7, "ALTER"),
                (8, "DESCRIBE"),
                (9, "CLUSTER_ACTION"),
                (10, "DESCRIBE_CONFIGS"),
                (11, "ALTER_CONFIGS"),
                (12, "IDEMPOTENT_WRITE"),
                (13, "CREATE_TOKENS"),
                (14, "DESCRIBE_TOKENS"),
                (15, "TWO_PHASE_COMMIT"),
            ]
        );
        let types: Vec<(i8, &str)> = ResourceType::VALUES
            .iter()
            .map(|t| (t.id(), t.name()))
            .collect();
        assert_eq!(
            types,
            [
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "TOPIC"),
                (3, "GROUP"),
                (4, "CLUSTER"),
                (5, "TRANSACTIONAL_ID"),
                (6, "DELEGATION_TOKEN"),
                (7, "USER"),
            ]
        );
        let patterns: Vec<(i8, &str)> = PatternType::VALUES
            .iter()
            .map(|p| (p.id(), p.name()))
            .collect();
        assert_eq!(
            patterns,
            [
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "MATCH"),
                (3, "LITERAL"),
                (4, "PREFIXED")
            ]
        );
        let permissions: Vec<(i8, &str)> = Permission::VALUES
            .iter()
            .map(|p| (p.id(), p.name()))
            .collect();
        assert_eq!(
            permissions,
            [(0, "UNKNOWN"), (1, "ANY"), (2, "DENY"), (3, "ALLOW")]
        );
        for op in Operation::VALUES {
            assert_eq!(Operation::from_id(op.id()), *op);
        }
        // An id from a newer Kafka is UNKNOWN, as in Kafka's fromCode.
        assert_eq!(Operation::from_id(99), Operation::Unknown);
        assert_eq!(ResourceType::from_id(-1), ResourceType::Unknown);
        assert_eq!(PatternType::from_id(5), PatternType::Unknown);
        assert_eq!(Permission::from_id(4), Permission::Unknown);
    }

    #[test]
    fn names_parse_case_insensitively_in_java_and_cli_spellings() {
        for spelling in [
            "DESCRIBE_CONFIGS",
            "DescribeConfigs",
            "describe-configs",
            " describeconfigs ",
        ] {
            assert_eq!(
                spelling.parse::<Operation>(),
                Ok(Operation::DescribeConfigs)
            );
        }
        assert_eq!("TransactionalId".parse(), Ok(ResourceType::TransactionalId));
        assert_eq!("topic".parse(), Ok(ResourceType::Topic));
        assert_eq!("Prefixed".parse(), Ok(PatternType::Prefixed));
        assert_eq!("allow".parse(), Ok(Permission::Allow));
        let err = "Reed".parse::<Operation>().expect_err("not an operation");
        assert_eq!(err.kafka_error_code(), INVALID_REQUEST);
        assert!(err.to_string().contains("READ"), "{err}");
    }

    #[test]
    fn deny_overrides_allow() {
        let authorizer = with_acls(vec![
            allow_topic("orders", PatternType::Literal, ALICE, Operation::Read),
            allow_topic("*", PatternType::Literal, ALICE, Operation::All),
            deny_topic("ord", PatternType::Prefixed, ALICE, Operation::Read),
        ]);
        let decision = authorizer.authorize(
            ALICE,
            "10.0.0.1",
            Operation::Read,
            ResourceType::Topic,
            "orders",
        );
        assert!(!decision.is_allowed());
        assert_eq!(
            decision.binding(),
            Some(&deny_topic(
                "ord",
                PatternType::Prefixed,
                ALICE,
                Operation::Read
            ))
        );
        // The DENY is for READ only; WRITE comes from the wildcard ALL.
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "orders"
        ));
        // A DENY of ALL denies every operation, even to a principal allowed by name.
        let authorizer = with_acls(vec![
            allow_topic("orders", PatternType::Literal, ALICE, Operation::Read),
            deny_topic(
                "orders",
                PatternType::Literal,
                WILDCARD_PRINCIPAL,
                Operation::All,
            ),
        ]);
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Read,
            "orders"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Describe,
            "orders"
        ));
    }

    #[test]
    fn prefixed_acl_grants_matching_topics_only() {
        let authorizer = with_acls(vec![allow_topic(
            "orders-",
            PatternType::Prefixed,
            ALICE,
            Operation::Write,
        )]);
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "orders-eu"
        ));
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "orders-"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "order"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "orders"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "my-orders-eu"
        ));
        assert!(!topic_allowed(
            &authorizer,
            BOB,
            Operation::Write,
            "orders-eu"
        ));
        // A literal ACL is not a prefix.
        let authorizer = with_acls(vec![allow_topic(
            "orders",
            PatternType::Literal,
            ALICE,
            Operation::Write,
        )]);
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Write,
            "orders-eu"
        ));
        // The other resource types are separate.
        let group = authorizer.authorize(
            ALICE,
            "10.0.0.1",
            Operation::Write,
            ResourceType::Group,
            "orders",
        );
        assert_eq!(group, Decision::NoAclFound { allowed: false });
    }

    #[test]
    fn prefix_lookup_skips_unrelated_prefixes_and_reports_the_longest() {
        let authorizer = with_acls(vec![
            allow_topic("f", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("fa", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("fb", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("foo", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("foob", PatternType::Literal, ALICE, Operation::Read),
            allow_topic("foobar", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("gar", PatternType::Prefixed, ALICE, Operation::Read),
        ]);
        let decision =
            authorizer.authorize(ALICE, "h", Operation::Read, ResourceType::Topic, "foobaz");
        assert_eq!(
            decision.binding(),
            Some(&allow_topic(
                "foo",
                PatternType::Prefixed,
                ALICE,
                Operation::Read
            ))
        );
        let index = &authorizer.by_type[&ResourceType::Topic];
        let found: Vec<usize> = index
            .prefixes_of("foobaz")
            .map(|b| b.by_principal.len())
            .collect();
        assert_eq!(found.len(), 2, "foo and f");
        assert_eq!(index.prefixes_of("e").count(), 0);
        assert_eq!(index.prefixes_of("fbx").count(), 2, "fb and f");
    }

    #[test]
    fn wildcard_principal_and_wildcard_resource() {
        let authorizer = with_acls(vec![
            allow_topic("*", PatternType::Literal, ALICE, Operation::Read),
            allow_topic(
                "public",
                PatternType::Literal,
                WILDCARD_PRINCIPAL,
                Operation::Read,
            ),
        ]);
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::Read,
            "anything"
        ));
        assert!(!topic_allowed(
            &authorizer,
            BOB,
            Operation::Read,
            "anything"
        ));
        assert!(topic_allowed(&authorizer, BOB, Operation::Read, "public"));
        // `User:*` applies to principals of any type, as in Kafka.
        assert!(topic_allowed(
            &authorizer,
            "Group:ops",
            Operation::Read,
            "public"
        ));
        // A wildcard ACL names every resource of its type, so the default does not apply.
        let open = Authorizer::with_bindings(
            AuthorizerConfig {
                allow_everyone_if_no_acl_found: true,
                ..AuthorizerConfig::default()
            },
            vec![allow_topic(
                "*",
                PatternType::Literal,
                ALICE,
                Operation::Read,
            )],
        )
        .expect("valid");
        assert!(!topic_allowed(&open, BOB, Operation::Read, "anything"));
        // Only `User:*` is a wildcard principal.
        let authorizer = with_acls(vec![allow_topic(
            "t",
            PatternType::Literal,
            "Group:*",
            Operation::Read,
        )]);
        assert!(!topic_allowed(
            &authorizer,
            "Group:ops",
            Operation::Read,
            "t"
        ));
    }

    #[test]
    fn read_write_delete_alter_imply_describe() {
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Delete,
            Operation::Alter,
        ] {
            let authorizer = with_acls(vec![allow_topic("t", PatternType::Literal, ALICE, op)]);
            assert!(
                topic_allowed(&authorizer, ALICE, Operation::Describe, "t"),
                "{op}"
            );
        }
        for op in [
            Operation::Create,
            Operation::AlterConfigs,
            Operation::IdempotentWrite,
        ] {
            let authorizer = with_acls(vec![allow_topic("t", PatternType::Literal, ALICE, op)]);
            assert!(
                !topic_allowed(&authorizer, ALICE, Operation::Describe, "t"),
                "{op}"
            );
        }
        // DESCRIBE does not imply READ, and WRITE does not imply READ.
        let authorizer = with_acls(vec![
            allow_topic("t", PatternType::Literal, ALICE, Operation::Describe),
            allow_topic("t", PatternType::Literal, ALICE, Operation::Write),
        ]);
        assert!(!topic_allowed(&authorizer, ALICE, Operation::Read, "t"));
        // A DENY of READ does not deny DESCRIBE: implications are for ALLOW only.
        let authorizer = with_acls(vec![
            allow_topic("t", PatternType::Literal, ALICE, Operation::Describe),
            deny_topic("t", PatternType::Literal, ALICE, Operation::Read),
        ]);
        assert!(topic_allowed(&authorizer, ALICE, Operation::Describe, "t"));
        assert!(!topic_allowed(&authorizer, ALICE, Operation::Read, "t"));
    }

    #[test]
    fn alter_configs_implies_describe_configs_not_the_reverse() {
        let authorizer = with_acls(vec![
            allow_topic("a", PatternType::Literal, ALICE, Operation::AlterConfigs),
            allow_topic("d", PatternType::Literal, ALICE, Operation::DescribeConfigs),
        ]);
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::DescribeConfigs,
            "a"
        ));
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::DescribeConfigs,
            "d"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::AlterConfigs,
            "d"
        ));
        // Nor does ALTER_CONFIGS imply DESCRIBE.
        assert!(!topic_allowed(&authorizer, ALICE, Operation::Describe, "a"));
    }

    #[test]
    fn all_grants_every_operation_and_idempotent_write_is_not_implied() {
        let authorizer = with_acls(vec![
            allow_topic("t", PatternType::Literal, ALICE, Operation::All),
            binding(
                ResourceType::Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                BOB,
                WILDCARD,
                Operation::Write,
                Permission::Allow,
            ),
        ]);
        for op in Operation::VALUES.iter().filter(|op| op.is_specific()) {
            assert!(topic_allowed(&authorizer, ALICE, *op, "t"), "{op}");
        }
        let idempotent = authorizer.authorize(
            BOB,
            "h",
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
        assert_eq!(idempotent, Decision::NoMatchingAllow);
    }

    #[test]
    fn super_user_bypasses_deny() {
        let config = AuthorizerConfig {
            super_users: AuthorizerConfig::parse_super_users("User:admin; User:ops ;")
                .expect("valid"),
            allow_everyone_if_no_acl_found: false,
        };
        let authorizer = Authorizer::with_bindings(
            config,
            vec![deny_topic(
                "t",
                PatternType::Literal,
                "User:admin",
                Operation::All,
            )],
        )
        .expect("valid");
        let decision = authorizer.authorize(
            "User:admin",
            "h",
            Operation::Delete,
            ResourceType::Topic,
            "t",
        );
        assert_eq!(decision, Decision::SuperUser);
        assert!(decision.is_allowed());
        assert!(topic_allowed(
            &authorizer,
            "User:ops",
            Operation::Read,
            "no-acls"
        ));
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Read,
            "no-acls"
        ));
        assert!(matches!(
            AuthorizerConfig::parse_super_users("User:bob;alice"),
            Err(AclError::InvalidPrincipal { principal }) if principal == "alice"
        ));
    }

    #[test]
    fn deny_by_default_with_no_acls_and_allow_everyone_if_no_acl_found() {
        let closed = Authorizer::new(AuthorizerConfig::default());
        assert_eq!(
            closed.authorize(ALICE, "h", Operation::Read, ResourceType::Topic, "t"),
            Decision::NoAclFound { allowed: false }
        );
        let mut open = Authorizer::new(AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..AuthorizerConfig::default()
        });
        assert!(topic_allowed(&open, ALICE, Operation::Read, "t"));
        // Once any ACL names the resource, the default no longer applies, whoever it is for.
        open.add(allow_topic(
            "t",
            PatternType::Literal,
            BOB,
            Operation::Write,
        ))
        .expect("valid");
        assert_eq!(
            open.authorize(ALICE, "h", Operation::Read, ResourceType::Topic, "t"),
            Decision::NoMatchingAllow
        );
        assert!(topic_allowed(&open, ALICE, Operation::Read, "other"));
        open.add(allow_topic(
            "o",
            PatternType::Prefixed,
            BOB,
            Operation::Write,
        ))
        .expect("valid");
        assert!(!topic_allowed(&open, ALICE, Operation::Read, "other"));
    }

    #[test]
    fn host_matching() {
        let on_host = |host: &str| AclBinding {
            host: host.to_owned(),
            ..allow_topic("t", PatternType::Literal, ALICE, Operation::Read)
        };
        let authorizer = with_acls(vec![
            on_host("10.0.0.1"),
            on_host("0:0:0:0:0:0:0:1"),
            AclBinding {
                permission: Permission::Deny,
                ..on_host("10.0.0.66")
            },
        ]);
        let from = |host: &str| {
            authorizer
                .authorize(ALICE, host, Operation::Read, ResourceType::Topic, "t")
                .is_allowed()
        };
        assert!(from("10.0.0.1"));
        assert!(!from("10.0.0.2"));
        assert!(!from("10.0.0.66"));
        // Java writes IPv6 uncompressed; the address is the same.
        assert!(from("::1"));
        // An IPv4 client accepted on a dual-stack socket.
        assert!(from("::ffff:10.0.0.1"));
        assert!(!from("not-an-address"));
        let anywhere = authorizer_with_host_wildcard();
        assert!(
            anywhere
                .authorize(
                    ALICE,
                    "192.168.1.9",
                    Operation::Read,
                    ResourceType::Topic,
                    "t"
                )
                .is_allowed()
        );
        // A host-restricted DENY does not apply elsewhere.
        let authorizer = with_acls(vec![
            allow_topic("t", PatternType::Literal, ALICE, Operation::Read),
            AclBinding {
                host: "10.0.0.66".to_owned(),
                ..deny_topic("t", PatternType::Literal, ALICE, Operation::Read)
            },
        ]);
        assert!(topic_allowed(&authorizer, ALICE, Operation::Read, "t"));
    }

    fn authorizer_with_host_wildcard() -> Authorizer {
        with_acls(vec![allow_topic(
            "t",
            PatternType::Literal,
            ALICE,
            Operation::Read,
        )])
    }

    /// The bindings of Kafka's `PatternType.MATCH` documentation, and some that must not match.
    fn filter_fixture() -> Vec<AclBinding> {
        vec![
            allow_topic(
                "payments.received",
                PatternType::Literal,
                ALICE,
                Operation::Read,
            ),
            allow_topic("*", PatternType::Literal, ALICE, Operation::Read),
            allow_topic("payments.", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic(
                "payments.received",
                PatternType::Prefixed,
                BOB,
                Operation::Write,
            ),
            allow_topic(
                "payments.other",
                PatternType::Literal,
                ALICE,
                Operation::Read,
            ),
            allow_topic("receipts", PatternType::Prefixed, ALICE, Operation::Read),
            deny_topic(
                "payments.received",
                PatternType::Literal,
                BOB,
                Operation::Read,
            ),
            binding(
                ResourceType::Group,
                "payments.received",
                PatternType::Literal,
                ALICE,
                "10.0.0.1",
                Operation::Read,
                Permission::Allow,
            ),
        ]
    }

    fn selected(authorizer: &Authorizer, filter: &AclBindingFilter) -> Vec<usize> {
        let fixture = filter_fixture();
        let bindings = authorizer.bindings(filter);
        let mut indices: Vec<usize> = bindings
            .iter()
            .map(|b| {
                fixture
                    .iter()
                    .position(|f| f == b)
                    .expect("from the fixture")
            })
            .collect();
        indices.sort_unstable();
        indices
    }

    #[test]
    fn filters_with_any_and_match_select_kafkas_bindings() {
        let authorizer = with_acls(filter_fixture());
        let topic_filter = |name: &str, pattern_type: PatternType| AclBindingFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some(name.to_owned()),
            pattern_type,
            ..AclBindingFilter::any()
        };
        assert_eq!(
            selected(&authorizer, &AclBindingFilter::any()),
            [0, 1, 2, 3, 4, 5, 6, 7]
        );
        // MATCH: the literal name, the wildcard, and prefixes of the name.
        assert_eq!(
            selected(
                &authorizer,
                &topic_filter("payments.received", PatternType::Match)
            ),
            [0, 1, 2, 3, 6]
        );
        // ANY: every pattern type, the name compared exactly.
        assert_eq!(
            selected(
                &authorizer,
                &topic_filter("payments.received", PatternType::Any)
            ),
            [0, 3, 6]
        );
        // LITERAL and PREFIXED: that type, the name exactly; a literal `*` only the wildcard.
        assert_eq!(
            selected(
                &authorizer,
                &topic_filter("payments.received", PatternType::Literal)
            ),
            [0, 6]
        );
        assert_eq!(
            selected(&authorizer, &topic_filter("*", PatternType::Literal)),
            [1]
        );
        assert_eq!(
            selected(
                &authorizer,
                &topic_filter("payments.", PatternType::Prefixed)
            ),
            [2]
        );
        // MATCH with the wildcard name finds only the wildcard.
        assert_eq!(
            selected(&authorizer, &topic_filter("*", PatternType::Match)),
            [1]
        );
        // No name: the pattern type alone.
        let prefixed = AclBindingFilter {
            pattern_type: PatternType::Prefixed,
            ..AclBindingFilter::any()
        };
        assert_eq!(selected(&authorizer, &prefixed), [2, 3, 5]);
        // The resource type ANY with MATCH spans types.
        let any_type = AclBindingFilter {
            resource_name: Some("payments.received".to_owned()),
            pattern_type: PatternType::Match,
            ..AclBindingFilter::any()
        };
        assert_eq!(selected(&authorizer, &any_type), [0, 1, 2, 3, 6, 7]);
        // Entry fields compare exactly; `User:*` is not a wildcard in a filter.
        let bob_deny = AclBindingFilter {
            principal: Some(BOB.to_owned()),
            permission: Permission::Deny,
            ..AclBindingFilter::any()
        };
        assert_eq!(selected(&authorizer, &bob_deny), [6]);
        let host = AclBindingFilter {
            host: Some("10.0.0.1".to_owned()),
            ..AclBindingFilter::any()
        };
        assert_eq!(selected(&authorizer, &host), [7]);
        let write = AclBindingFilter {
            operation: Operation::Write,
            ..AclBindingFilter::any()
        };
        assert_eq!(selected(&authorizer, &write), [3]);
        let wildcard_principal = AclBindingFilter {
            principal: Some(WILDCARD_PRINCIPAL.to_owned()),
            ..AclBindingFilter::any()
        };
        assert!(selected(&authorizer, &wildcard_principal).is_empty());
        // A binding's own filter selects it alone.
        for (index, binding) in filter_fixture().iter().enumerate() {
            assert_eq!(selected(&authorizer, &binding.to_filter()), [index]);
        }
    }

    #[test]
    fn remove_matching_deletes_what_the_filter_selects() {
        let mut authorizer = with_acls(filter_fixture());
        assert!(topic_allowed(
            &authorizer,
            ALICE,
            Operation::Read,
            "payments.x"
        ));
        let filter = AclBindingFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some("payments.x".to_owned()),
            pattern_type: PatternType::Match,
            principal: Some(ALICE.to_owned()),
            ..AclBindingFilter::any()
        };
        let removed = authorizer.remove_matching(&filter);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed.contains(&allow_topic(
            "*",
            PatternType::Literal,
            ALICE,
            Operation::Read
        )));
        assert_eq!(authorizer.len(), filter_fixture().len() - 2);
        assert!(!topic_allowed(
            &authorizer,
            ALICE,
            Operation::Read,
            "payments.x"
        ));
        assert!(authorizer.remove_matching(&filter).is_empty());
        // Removing everything leaves no index behind.
        authorizer.remove_matching(&AclBindingFilter::any());
        assert!(authorizer.is_empty());
        assert!(authorizer.by_type.is_empty());
    }

    #[test]
    fn adding_an_existing_binding_changes_nothing() {
        let mut authorizer = Authorizer::default();
        let acl = allow_topic("t", PatternType::Literal, ALICE, Operation::Read);
        assert_eq!(authorizer.add(acl.clone()), Ok(true));
        assert_eq!(authorizer.add(acl.clone()), Ok(false));
        assert_eq!(authorizer.len(), 1);
        assert!(authorizer.remove(&acl));
        assert!(!authorizer.remove(&acl));
        assert!(!topic_allowed(&authorizer, ALICE, Operation::Read, "t"));
    }

    #[test]
    fn validation_refuses_bad_bindings() {
        let good = allow_topic("t", PatternType::Literal, ALICE, Operation::Read);
        assert_eq!(good.validate(), Ok(()));
        let cases = [
            (
                AclBinding {
                    pattern_type: PatternType::Match,
                    ..good.clone()
                },
                AclError::InvalidPatternType {
                    pattern_type: PatternType::Match,
                },
            ),
            (
                AclBinding {
                    pattern_type: PatternType::Any,
                    ..good.clone()
                },
                AclError::InvalidPatternType {
                    pattern_type: PatternType::Any,
                },
            ),
            (
                AclBinding {
                    resource_type: ResourceType::Any,
                    ..good.clone()
                },
                AclError::InvalidResourceType {
                    resource_type: ResourceType::Any,
                },
            ),
            (
                AclBinding {
                    resource_type: ResourceType::Unknown,
                    ..good.clone()
                },
                AclError::InvalidResourceType {
                    resource_type: ResourceType::Unknown,
                },
            ),
            (
                AclBinding {
                    operation: Operation::Any,
                    ..good.clone()
                },
                AclError::InvalidOperation {
                    operation: Operation::Any,
                },
            ),
            (
                AclBinding {
                    permission: Permission::Any,
                    ..good.clone()
                },
                AclError::InvalidPermission {
                    permission: Permission::Any,
                },
            ),
            (
                AclBinding {
                    resource_name: String::new(),
                    ..good.clone()
                },
                AclError::EmptyResourceName,
            ),
            (
                AclBinding {
                    principal: "alice".to_owned(),
                    ..good.clone()
                },
                AclError::InvalidPrincipal {
                    principal: "alice".to_owned(),
                },
            ),
            (
                AclBinding {
                    principal: ":alice".to_owned(),
                    ..good.clone()
                },
                AclError::InvalidPrincipal {
                    principal: ":alice".to_owned(),
                },
            ),
            (
                AclBinding {
                    resource_type: ResourceType::Cluster,
                    resource_name: "my-cluster".to_owned(),
                    ..good.clone()
                },
                AclError::InvalidClusterName {
                    name: "my-cluster".to_owned(),
                },
            ),
        ];
        let mut authorizer = Authorizer::default();
        for (bad, expected) in cases {
            assert_eq!(bad.validate(), Err(expected.clone()), "{bad}");
            assert_eq!(expected.kafka_error_code(), INVALID_REQUEST);
            assert_eq!(authorizer.add(bad), Err(expected));
        }
        assert!(authorizer.is_empty());
        // Accepted as Kafka accepts them.
        for fine in [
            AclBinding {
                principal: "Group:ops".to_owned(),
                ..good.clone()
            },
            AclBinding {
                principal: "User:CN=alice,O=acme".to_owned(),
                ..good.clone()
            },
            AclBinding {
                resource_name: WILDCARD.to_owned(),
                pattern_type: PatternType::Prefixed,
                ..good.clone()
            },
        ] {
            assert_eq!(fine.validate(), Ok(()), "{fine}");
        }
        let message = AclError::InvalidClusterName {
            name: "x".to_owned(),
        }
        .to_string();
        assert!(
            message.starts_with("the only valid name for the CLUSTER resource is kafka-cluster")
        );
    }

    #[test]
    fn filter_validation_refuses_unknown_fields() {
        assert_eq!(AclBindingFilter::any().validate(), Ok(()));
        let cases = [
            (
                AclBindingFilter {
                    resource_type: ResourceType::Unknown,
                    ..AclBindingFilter::any()
                },
                "resource type",
            ),
            (
                AclBindingFilter {
                    pattern_type: PatternType::Unknown,
                    ..AclBindingFilter::any()
                },
                "pattern type",
            ),
            (
                AclBindingFilter {
                    operation: Operation::Unknown,
                    ..AclBindingFilter::any()
                },
                "operation",
            ),
            (
                AclBindingFilter {
                    permission: Permission::Unknown,
                    ..AclBindingFilter::any()
                },
                "permission type",
            ),
        ];
        let mut authorizer = with_acls(filter_fixture());
        for (filter, field) in cases {
            assert_eq!(
                filter.validate(),
                Err(AclError::UnknownFilterField { field })
            );
            // Unvalidated, such a filter selects nothing.
            assert!(authorizer.remove_matching(&filter).is_empty());
        }
    }

    #[test]
    fn every_error_maps_to_a_kafka_error_code() {
        let errors = [
            AclError::InvalidClusterName {
                name: String::new(),
            },
            AclError::EmptyResourceName,
            AclError::InvalidResourceType {
                resource_type: ResourceType::Any,
            },
            AclError::InvalidPatternType {
                pattern_type: PatternType::Any,
            },
            AclError::InvalidOperation {
                operation: Operation::Any,
            },
            AclError::InvalidPermission {
                permission: Permission::Any,
            },
            AclError::InvalidPrincipal {
                principal: String::new(),
            },
            AclError::UnknownFilterField { field: "operation" },
            AclError::UnknownName {
                kind: "operation",
                name: String::new(),
                expected: String::new(),
            },
            AclError::MalformedRecord {
                reason: String::new(),
            },
        ];
        for error in errors {
            let expected = match error {
                AclError::MalformedRecord { .. } => UNKNOWN_SERVER_ERROR,
                _ => INVALID_REQUEST,
            };
            assert_eq!(error.kafka_error_code(), expected, "{error}");
        }
    }

    #[test]
    fn decisions_name_the_rule_for_audit_logs() {
        let authorizer = with_acls(vec![deny_topic(
            "t",
            PatternType::Literal,
            ALICE,
            Operation::Read,
        )]);
        let denied = authorizer.authorize(ALICE, "h", Operation::Read, ResourceType::Topic, "t");
        assert_eq!(
            denied.to_string(),
            "denied by ACL (pattern=ResourcePattern(resourceType=TOPIC, name=t, \
             patternType=LITERAL), entry=(principal=User:alice, host=*, operation=READ, \
             permissionType=DENY))"
        );
        assert_eq!(
            Decision::NoAclFound { allowed: false }.to_string(),
            "denied: no ACL for the resource"
        );
        assert_eq!(Decision::SuperUser.binding(), None);
    }

    #[test]
    fn authorize_by_resource_type_follows_kafkas_default() {
        let t = |name: &str, pattern: PatternType, permission: Permission| AclBinding {
            permission,
            ..allow_topic(name, pattern, ALICE, Operation::Write)
        };
        let check = |bindings: Vec<AclBinding>| {
            with_acls(bindings)
                .authorize_by_resource_type(ALICE, "h", Operation::Write, ResourceType::Topic)
                .is_allowed()
        };
        assert!(!check(vec![]));
        assert!(check(vec![t("a", PatternType::Literal, Permission::Allow)]));
        // A DENY on the same literal dominates it; on another name it does not.
        assert!(!check(vec![
            t("a", PatternType::Literal, Permission::Allow),
            t("a", PatternType::Literal, Permission::Deny),
        ]));
        assert!(check(vec![
            t("a", PatternType::Literal, Permission::Allow),
            t("b", PatternType::Literal, Permission::Deny),
        ]));
        // A prefixed DENY dominates every pattern it is a prefix of.
        assert!(!check(vec![
            t("abc", PatternType::Literal, Permission::Allow),
            t("ab", PatternType::Prefixed, Permission::Allow),
            t("a", PatternType::Prefixed, Permission::Deny),
        ]));
        assert!(check(vec![
            t("a", PatternType::Prefixed, Permission::Allow),
            t("ab", PatternType::Prefixed, Permission::Deny),
        ]));
        // A wildcard DENY dominates everything; a wildcard ALLOW wins over other denials.
        assert!(!check(vec![
            t("a", PatternType::Literal, Permission::Allow),
            t("*", PatternType::Literal, Permission::Deny),
        ]));
        assert!(check(vec![
            t("*", PatternType::Literal, Permission::Allow),
            t("a", PatternType::Prefixed, Permission::Deny),
        ]));
        // Only the operation itself or ALL counts, not implications.
        let describe = with_acls(vec![t("a", PatternType::Literal, Permission::Allow)]);
        assert!(
            !describe
                .authorize_by_resource_type(ALICE, "h", Operation::Describe, ResourceType::Topic)
                .is_allowed()
        );
        // InitProducerId: IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
        let producer = with_acls(vec![allow_topic(
            "orders-",
            PatternType::Prefixed,
            ALICE,
            Operation::Write,
        )]);
        let idempotent = producer
            .authorize(
                ALICE,
                "h",
                Operation::IdempotentWrite,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
            .is_allowed()
            || producer
                .authorize_by_resource_type(ALICE, "h", Operation::Write, ResourceType::Topic)
                .is_allowed();
        assert!(idempotent);
        // Super users and the no-ACL default answer through the probe.
        let open = Authorizer::new(AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..AuthorizerConfig::default()
        });
        assert!(
            open.authorize_by_resource_type(BOB, "h", Operation::Read, ResourceType::Group)
                .is_allowed()
        );
    }

    #[test]
    fn storage_round_trip_and_tombstone() {
        for binding in filter_fixture() {
            let (key_bytes, value) = encode(&binding);
            assert_eq!(key_bytes, key(&binding));
            assert_eq!(
                decode(&key_bytes, Some(&value)),
                Ok(AclRecord::Put(binding.clone()))
            );
            assert_eq!(
                decode(&key_bytes, None),
                Ok(AclRecord::Delete(binding.clone()))
            );
        }
        // Replaying puts and tombstones rebuilds the authorizer.
        let mut replayed = Authorizer::default();
        for binding in filter_fixture() {
            let (key_bytes, value) = encode(&binding);
            let record = decode(&key_bytes, Some(&value)).expect("decodes");
            replayed.apply(record).expect("valid");
        }
        let first = filter_fixture().remove(0);
        replayed
            .apply(decode(&key(&first), None).expect("decodes"))
            .expect("valid");
        assert_eq!(replayed.len(), filter_fixture().len() - 1);
        assert!(!replayed.bindings(&AclBindingFilter::any()).contains(&first));
    }

    #[test]
    fn storage_keys_are_deterministic_and_distinct() {
        let acl = allow_topic("orders-", PatternType::Prefixed, ALICE, Operation::Read);
        assert_eq!(
            String::from_utf8(key(&acl)).expect("utf-8"),
            r#"{"version":1,"resource_type":"TOPIC","resource_name":"orders-","pattern_type":"PREFIXED","principal":"User:alice","host":"*","operation":"READ","permission_type":"ALLOW"}"#
        );
        assert_eq!(key(&acl), key(&acl.clone()));
        let mut keys = HashSet::new();
        for binding in filter_fixture() {
            assert!(keys.insert(key(&binding)), "{binding}");
        }
        // Names with quotes and non-ASCII survive.
        let odd = allow_topic(
            "a\"b\\é",
            PatternType::Literal,
            "User:\"x\"",
            Operation::Read,
        );
        let (key_bytes, value) = encode(&odd);
        assert_eq!(decode(&key_bytes, Some(&value)), Ok(AclRecord::Put(odd)));
    }

    #[test]
    fn malformed_records_are_errors() {
        let acl = allow_topic("t", PatternType::Literal, ALICE, Operation::Read);
        let (key_bytes, value) = encode(&acl);
        let text = String::from_utf8(key_bytes.clone()).expect("utf-8");
        let bad_keys = [
            Vec::new(),
            b"\xff\x00garbage".to_vec(),
            b"{}".to_vec(),
            text.replace("\"version\":1", "\"version\":2").into_bytes(),
            text.replace("READ", "REED").into_bytes(),
            text.replace("LITERAL", "MATCH").into_bytes(),
            text.replace("User:alice", "alice").into_bytes(),
            key_bytes[..key_bytes.len() / 2].to_vec(),
        ];
        for bad in bad_keys {
            let err = decode(&bad, Some(&value)).expect_err("malformed key");
            assert!(matches!(err, AclError::MalformedRecord { .. }), "{err}");
        }
        let bad_values: [&[u8]; 4] = [b"", b"null", b"{\"version\":7}", b"\x00"];
        for bad_value in bad_values {
            let err = decode(&key_bytes, Some(bad_value)).expect_err("malformed value");
            assert!(matches!(err, AclError::MalformedRecord { .. }), "{err}");
        }
        // Unknown fields from a later minor change are ignored.
        assert_eq!(
            decode(
                &key_bytes,
                Some(br#"{"version":1,"created_by":"User:admin"}"#)
            ),
            Ok(AclRecord::Put(acl))
        );
    }

    /// A deterministic pseudo-random source (SplitMix64), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())].clone()
        }

        fn name(&mut self) -> String {
            if self.below(8) == 0 {
                return WILDCARD.to_owned();
            }
            let len = 1 + self.below(4);
            (0..len).map(|_| self.pick(&['a', 'b', 'é', '*'])).collect()
        }
    }

    const PRINCIPALS: &[&str] = &["User:alice", "User:bob", "User:*", "Group:ops"];
    const REQUEST_PRINCIPALS: &[&str] = &["User:alice", "User:bob", "Group:ops", "User:root"];
    const HOSTS: &[&str] = &[
        "*",
        "10.0.0.1",
        "10.0.0.2",
        "0:0:0:0:0:0:0:1",
        "::ffff:10.0.0.2",
    ];
    const REQUEST_HOSTS: &[&str] = &["10.0.0.1", "10.0.0.2", "::1", "::ffff:10.0.0.1", "h"];
    const TYPES: &[ResourceType] = &[
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::TransactionalId,
        ResourceType::Cluster,
    ];

    fn random_binding(rng: &mut Rng) -> AclBinding {
        let resource_type = rng.pick(TYPES);
        let (resource_name, pattern_type) = if resource_type == ResourceType::Cluster {
            (CLUSTER_NAME.to_owned(), PatternType::Literal)
        } else {
            (
                rng.name(),
                rng.pick(&[PatternType::Literal, PatternType::Prefixed]),
            )
        };
        let operations: Vec<Operation> = Operation::VALUES
            .iter()
            .copied()
            .filter(|op| op.is_specific())
            .collect();
        AclBinding {
            resource_type,
            resource_name,
            pattern_type,
            principal: rng.pick(PRINCIPALS).to_owned(),
            host: rng.pick(HOSTS).to_owned(),
            operation: rng.pick(&operations),
            permission: rng.pick(&[Permission::Allow, Permission::Deny]),
        }
    }

    fn random_filter(rng: &mut Rng) -> AclBindingFilter {
        let mut filter = AclBindingFilter::any();
        if rng.below(2) == 0 {
            filter.resource_type = rng.pick(TYPES);
        }
        if rng.below(2) == 0 {
            filter.resource_name = Some(rng.name());
        }
        filter.pattern_type = rng.pick(&[
            PatternType::Any,
            PatternType::Match,
            PatternType::Literal,
            PatternType::Prefixed,
        ]);
        if rng.below(3) == 0 {
            filter.principal = Some(rng.pick(PRINCIPALS).to_owned());
        }
        if rng.below(4) == 0 {
            filter.host = Some(rng.pick(HOSTS).to_owned());
        }
        if rng.below(3) == 0 {
            filter.permission = rng.pick(&[Permission::Allow, Permission::Deny]);
        }
        filter
    }

    /// The rules read straight off Kafka's `StandardAuthorizerData`, over every binding.
    fn naive_authorize(
        config: &AuthorizerConfig,
        bindings: &[AclBinding],
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> (bool, Vec<AclBinding>) {
        if config.super_users.contains(principal) {
            return (true, Vec::new());
        }
        let on_resource: Vec<&AclBinding> = bindings
            .iter()
            .filter(|b| b.resource_type == resource_type)
            .filter(|b| match b.pattern_type {
                PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(b.resource_name.as_str()),
                _ => false,
            })
            .collect();
        if on_resource.is_empty() {
            return (config.allow_everyone_if_no_acl_found, Vec::new());
        }
        let same_host = |acl: &str| {
            acl == WILDCARD
                || acl == host
                || matches!((host_ip(acl), host_ip(host)), (Some(a), Some(b)) if a == b)
        };
        let applicable: Vec<&AclBinding> = on_resource
            .into_iter()
            .filter(|b| b.principal == principal || b.principal == WILDCARD_PRINCIPAL)
            .filter(|b| same_host(&b.host))
            .collect();
        let denies: Vec<AclBinding> = applicable
            .iter()
            .filter(|b| b.permission == Permission::Deny)
            .filter(|b| b.operation == Operation::All || b.operation == operation)
            .map(|b| (*b).clone())
            .collect();
        if !denies.is_empty() {
            return (false, denies);
        }
        let allows: Vec<AclBinding> = applicable
            .iter()
            .filter(|b| b.permission == Permission::Allow && b.operation.implies(operation))
            .map(|b| (*b).clone())
            .collect();
        (!allows.is_empty(), allows)
    }

    #[test]
    fn indexed_authorizer_agrees_with_a_naive_scan() {
        // How often each kind of decision came up, so the test cannot pass on trivial cases.
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for seed in 0..8u64 {
            let mut rng = Rng(seed);
            let config = AuthorizerConfig {
                super_users: if seed % 2 == 0 {
                    BTreeSet::from(["User:root".to_owned()])
                } else {
                    BTreeSet::new()
                },
                allow_everyone_if_no_acl_found: seed % 4 < 2,
            };
            let mut authorizer = Authorizer::new(config.clone());
            let mut model: BTreeSet<AclBinding> = BTreeSet::new();
            for step in 0..600 {
                match rng.below(10) {
                    0..7 => {
                        let binding = random_binding(&mut rng);
                        let added = authorizer.add(binding.clone()).expect("valid");
                        assert_eq!(added, model.insert(binding));
                    }
                    7..9 if !model.is_empty() => {
                        let existing: Vec<AclBinding> = model.iter().cloned().collect();
                        let binding = rng.pick(&existing);
                        assert!(authorizer.remove(&binding));
                        model.remove(&binding);
                    }
                    _ => {
                        let filter = random_filter(&mut rng);
                        let expected: Vec<AclBinding> = model
                            .iter()
                            .filter(|b| filter.matches(b))
                            .cloned()
                            .collect();
                        assert_eq!(authorizer.bindings(&filter), expected, "{filter}");
                        if rng.below(4) == 0 {
                            assert_eq!(authorizer.remove_matching(&filter), expected);
                            model.retain(|b| !filter.matches(b));
                        }
                    }
                }
                assert_eq!(authorizer.len(), model.len());
                let bindings: Vec<AclBinding> = model.iter().cloned().collect();
                let queries = if step % 50 == 0 { 400 } else { 8 };
                for _ in 0..queries {
                    let principal = rng.pick(REQUEST_PRINCIPALS);
                    let host = rng.pick(REQUEST_HOSTS);
                    let operations: Vec<Operation> = Operation::VALUES
                        .iter()
                        .copied()
                        .filter(|op| op.is_specific())
                        .collect();
                    let operation = rng.pick(&operations);
                    let resource_type = rng.pick(TYPES);
                    let name = if resource_type == ResourceType::Cluster {
                        CLUSTER_NAME.to_owned()
                    } else {
                        rng.name()
                    };
                    let decision =
                        authorizer.authorize(principal, host, operation, resource_type, &name);
                    let (allowed, deciders) = naive_authorize(
                        &config,
                        &bindings,
                        principal,
                        host,
                        operation,
                        resource_type,
                        &name,
                    );
                    let context = format!(
                        "seed {seed} step {step}: {principal} {host} {operation} \
                         {resource_type}:{name} -> {decision}"
                    );
                    assert_eq!(decision.is_allowed(), allowed, "{context}");
                    let kind = match &decision {
                        Decision::AllowedByAcl(binding) | Decision::DeniedByAcl(binding) => {
                            assert!(deciders.contains(binding), "{context}");
                            let via_prefix = binding.pattern_type == PatternType::Prefixed;
                            match (decision.is_allowed(), via_prefix) {
                                (true, true) => "allowed by a prefixed ACL",
                                (true, false) => "allowed by a literal ACL",
                                (false, true) => "denied by a prefixed ACL",
                                (false, false) => "denied by a literal ACL",
                            }
                        }
                        Decision::SuperUser => {
                            assert!(config.super_users.contains(principal), "{context}");
                            "super user"
                        }
                        Decision::NoAclFound { .. } => {
                            assert!(deciders.is_empty(), "{context}");
                            "no ACL found"
                        }
                        Decision::NoMatchingAllow => {
                            assert!(deciders.is_empty(), "{context}");
                            "no matching allow"
                        }
                    };
                    *kinds.entry(kind).or_default() += 1;
                }
            }
        }
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        assert!(kinds.values().all(|count| *count >= 100), "{kinds:?}");
    }
}
