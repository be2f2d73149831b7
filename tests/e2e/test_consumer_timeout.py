"""A long attempt outlives the broker's consumer timeout and runs once (docs/design.md,
"Long attempts"), on a private RabbitMQ node whose `consumer_timeout` is 3 s (checked
every second) instead of 30 min; LEASE_AFTER_SECONDS is lowered to match. The machine's
own node is not touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.stack import Stack
from tests import private_node
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected

CONSUMER_TIMEOUT = "consumer_timeout = 3000"
TICK_EVERY_SECOND = "[{rabbit, [{channel_tick_interval, 1000}]}]."


@pytest.fixture(scope="module")
def amqp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = private_node.start(
        tmp_path_factory.mktemp("rabbit"), CONSUMER_TIMEOUT, TICK_EVERY_SECOND
    )
    try:
        yield node.amqp_url
    finally:
        node.stop()


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "LEASE_AFTER_SECONDS": "2", "HEARTBEAT_SECONDS": "0.5"}


async def test_an_attempt_longer_than_the_consumer_timeout_runs_once(stack: Stack) -> None:
    [job_id] = await submit(
        stack.env["AMQP_URL"],
        job("sleep", params={"seconds": 8}, timeout_seconds=60, target_cloud="private"),
    )
    view = await wait_for(stack.api, job_id, timeout=60)
    assert (view["status"], view["attempts"]) == ("succeeded", 1), view
    history = [e["type"] for e in await events(stack.api, job_id)]
    assert history.count("JobStarted") == 1, history
    assert "JobFailed" not in history, history
