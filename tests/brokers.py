"""Which RabbitMQ the connected tests use: the machine's node, or a local cluster.

`make test-cluster` starts three local nodes (devtools/nodes.py) and sets
HYBRIDQ_TEST_CLUSTER to the folder describing them; the same tests then run on the cluster
with WORK_QUEUE_TYPE=quorum and one AMQP URL per node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from devtools import environment, nodes


@dataclass(frozen=True)
class BrokerUnderTest:
    management: str
    ports: tuple[int, ...]
    nodes: tuple[nodes.Node, ...] = ()

    @property
    def clustered(self) -> bool:
        return len(self.nodes) > 1

    @property
    def queue_type(self) -> str:
        return "quorum" if self.clustered else "classic"


@cache
def broker_under_test() -> BrokerUnderTest:
    folder = os.environ.get("HYBRIDQ_TEST_CLUSTER")
    if not folder:
        return BrokerUnderTest(environment.MANAGEMENT, (5672,))
    found = tuple(nodes.load(Path(folder)))
    if not found:
        raise RuntimeError(f"HYBRIDQ_TEST_CLUSTER={folder} describes no running cluster")
    return BrokerUnderTest(found[0].management, tuple(n.port for n in found), found)


def first_url(amqp_url: str) -> str:
    """The first node's URL of an AMQP_URL (for raw clients that take one)."""
    return amqp_url.split(",")[0]
