"""ACL administration with confluent-kafka's AdminClient: CreateAcls, DescribeAcls and
DeleteAcls against Spate, with the bindings surviving a restart. (Enforcement comes next.)"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)


def binding(name: str, pattern: ResourcePatternType, operation: AclOperation, principal: str = "User:alice"):
    return AclBinding(ResourceType.TOPIC, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)


def describe_all(admin: AdminClient) -> set:
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    return set(admin.describe_acls(everything).result(timeout=30))


def test_acls_are_created_described_deleted_and_kept_across_a_restart(spate):
    admin = AdminClient({"bootstrap.servers": spate.bootstrap})
    prefixed = binding("orders-", ResourcePatternType.PREFIXED, AclOperation.READ)
    literal = binding("payments", ResourcePatternType.LITERAL, AclOperation.WRITE)
    group = AclBinding(
        ResourceType.GROUP, "billing", ResourcePatternType.LITERAL, "User:bob", "*",
        AclOperation.READ, AclPermissionType.DENY,
    )
    for future in admin.create_acls([prefixed, literal, group]).values():
        assert future.result(timeout=30) is None
    assert describe_all(admin) == {prefixed, literal, group}

    # MATCH finds the prefixed ACL that covers a topic name.
    match = AclBindingFilter(
        ResourceType.TOPIC, "orders-eu", ResourcePatternType.MATCH, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    assert set(admin.describe_acls(match).result(timeout=30)) == {prefixed}

    # An invalid binding is refused without touching the others.
    bad = AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "alice", "*", AclOperation.READ,
                     AclPermissionType.ALLOW)
    with pytest.raises(KafkaException):
        admin.create_acls([bad])[bad].result(timeout=30)

    spate.restart()
    admin = AdminClient({"bootstrap.servers": spate.bootstrap})
    assert describe_all(admin) == {prefixed, literal, group}, "ACLs survive a restart"

    by_alice = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY, AclPermissionType.ANY
    )
    deleted = admin.delete_acls([by_alice])[by_alice].result(timeout=30)
    assert set(deleted) == {prefixed, literal}
    assert describe_all(admin) == {group}
    spate.restart()
    assert describe_all(AdminClient({"bootstrap.servers": spate.bootstrap})) == {group}, "deletes survive too"
