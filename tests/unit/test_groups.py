"""A job group's status, from its members and compensations."""

from __future__ import annotations

import uuid

import pytest

from services.status.domain.ids import compensation_job_id
from services.status.domain.saga import Member, compensations_due, group_status


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


def member(outcome: str | None, compensation: bool = True, **extra: object) -> Member:
    fields: dict[str, object] = {
        "site": "public",
        "data_classification": "internal",
        "priority": 7,
        "compensation_job_id": None,
        **extra,
    }
    return Member(
        job_id=uuid.uuid4(),
        compensation={"job_type": "noop", "params": {"undo": 1}} if compensation else None,
        outcome=outcome,
        **fields,  # type: ignore[arg-type]
    )


def test_a_cancelled_member_calls_for_the_succeeded_members_compensations() -> None:
    group = uuid.uuid4()
    done, secret, plain, cancelled = (
        member("succeeded"),
        member("succeeded", data_classification="confidential"),
        member("succeeded", compensation=False),
        member("cancelled"),
    )
    due = compensations_due(group, [done, secret, plain, cancelled])
    assert [j.job_id for j in due] == [
        compensation_job_id(group, done.job_id),
        compensation_job_id(group, secret.job_id),
    ]
    assert [j.target_cloud for j in due] == ["public", "private"]  # confidential stays private
    assert due[0].params == {"undo": 1}
    assert due[0].priority == 7


def test_nothing_is_due_while_no_member_failed_or_once_submitted() -> None:
    group = uuid.uuid4()
    assert compensations_due(group, [member("succeeded"), member(None)]) == []
    already = member("succeeded", compensation_job_id=uuid.uuid4())
    assert compensations_due(group, [already, member("dead_lettered")]) == []
    # a member that succeeds after the group failed is compensated then
    assert len(compensations_due(group, [member("rejected"), member("succeeded")])) == 1
