"""A 3-node RabbitMQ cluster for the node-loss tests: the one `make test-cluster` started
(HYBRIDQ_TEST_CLUSTER), or one this session starts on its own ports and stops after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from devtools import nodes
from tests.brokers import broker_under_test

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
