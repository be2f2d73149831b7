"""A 3-node RabbitMQ cluster for the node-loss tests: the one `make test-cluster` started
(HYBRIDQ_TEST_CLUSTER), or one this session starts on its own ports and stops after."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import environment, nodes
from devtools.stack import Stack
from tests.brokers import broker_under_test
from tests.conftest import free_port

OWN_CLUSTER_FIRST_PORT = 5711


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[nodes.Node]]:
    shared = broker_under_test()
    if shared.clustered:
        yield list(shared.nodes)
        return
    base = nodes.scratch_dir()
    started = nodes.start_cluster(base, 3, OWN_CLUSTER_FIRST_PORT)
    try:
        yield started
    finally:
        nodes.stop_cluster(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def clustered_stack(
    cluster: list[nodes.Node], database_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, str]]:
    vhost = f"hybridq_test_{uuid.uuid4().hex[:10]}"
    seed = cluster[0]
    environment.create_vhost(vhost, management=seed.management, ports=(seed.port,))
    urls = ",".join(n.amqp_url(vhost) for n in cluster)  # every service starts on node 1
    env = {
        "AMQP_URL": urls,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "WORK_QUEUE_TYPE": "quorum",
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "1",
    }
    stack = Stack(env, tmp_path / "logs")
    stack.start()
    try:
        stack.wait_ready(60)
        yield stack, vhost
    finally:
        codes = stack.stop()
        environment.delete_vhost(vhost, management=cluster[1].management)
        assert set(codes.values()) == {0}, f"{codes}; logs in {tmp_path / 'logs'}"
