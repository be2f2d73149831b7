"""JSON types are strict over HTTP (contract 3.1): a string (or a boolean) where a number
is expected is a 422 naming the field, on `POST /jobs` and on the jobs that
`POST /job-groups` and `POST /schedules` embed; what JSON can only carry as a string
(UUIDs, datetimes, enums) is still accepted, and an integer is a number."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from devtools.stack import Stack
from tests.api.conftest import ADMIN, client

pytestmark = pytest.mark.connected

WRONG = [
    ("max_attempts", "3"),
    ("priority", "5"),
    ("delay_seconds", "1"),
    ("timeout_seconds", "30"),
    ("max_attempts", True),
    ("priority", 5.0),
]


def fields_of(answer: dict[str, Any]) -> list[str]:
    return [e["field"] for e in answer["errors"]]


@pytest.mark.parametrize(("field", "value"), WRONG)
async def test_a_string_for_a_number_is_a_422_naming_the_field(
    status: Stack, field: str, value: object
) -> None:
    spec = {"job_type": "noop", field: value}
    async with client(status, ADMIN) as http:
        job = await http.post("/jobs", json=spec)
        group = await http.post("/job-groups", json={"jobs": [{"job_type": "noop"}, spec]})
        schedule = await http.post(
            "/schedules",
            json={"name": f"s-{uuid.uuid4().hex[:8]}", "every_seconds": 60, "job": spec},
        )
    assert job.status_code == 422, job.text
    assert fields_of(job.json()) == [field]
    assert group.status_code == 422, group.text
    assert fields_of(group.json()) == [f"jobs.1.{field}"]
    assert schedule.status_code == 422, schedule.text
    assert fields_of(schedule.json()) == [f"job.{field}"]


async def test_strings_that_json_can_only_carry_as_strings_are_accepted(status: Stack) -> None:
    spec = {
        "job_id": str(uuid.uuid4()),
        "job_type": "noop",
        "priority": 7,
        "max_attempts": 2,
        "delay_seconds": 1,  # an integer for a number
        "timeout_seconds": 2.5,
        "target_cloud": "private",
        "data_classification": "confidential",
        "parent_id": str(uuid.uuid4()),
    }
    at = {"job_type": "noop", "not_before": "2030-01-01T00:00:00+00:00"}
    async with client(status, ADMIN) as http:
        posted = await http.post("/jobs", json=spec)
        later = await http.post("/jobs", json=at)
    assert posted.status_code == 202, posted.text
    assert posted.json()["job_id"] == spec["job_id"]
    assert later.status_code == 202, later.text
