"""A job group's status, from its members and compensations."""

from __future__ import annotations

import uuid

import pytest

from services.status.groups import compensation_job_id, group_status


@pytest.mark.parametrize(
    ("members", "compensations", "status"),
    [
        (["queued", "running"], [], "running"),
        (["succeeded", "running"], [], "running"),
        (["succeeded", "succeeded"], [], "succeeded"),
        (["succeeded", "dead_lettered"], [None], "compensating"),
        (["succeeded", "dead_lettered"], ["running"], "compensating"),
        (["succeeded", "dead_lettered"], ["succeeded"], "compensated"),
        (["running", "cancelled"], [], "compensating"),  # a member still runs
        (["succeeded", "cancelled", "succeeded"], ["succeeded", "succeeded"], "compensated"),
        (["succeeded", "dead_lettered"], ["dead_lettered"], "failed"),
        (["dead_lettered"], [], "compensated"),  # nothing had succeeded: nothing to undo
    ],
)
def test_group_status(members: list[str], compensations: list[str | None], status: str) -> None:
    assert group_status(members, compensations) == status


def test_compensation_ids_are_deterministic() -> None:
    group, member = uuid.uuid4(), uuid.uuid4()
    assert compensation_job_id(group, member) == compensation_job_id(group, member)
    assert compensation_job_id(group, member) != compensation_job_id(group, uuid.uuid4())
