"""Generate deploy/rabbitmq/definitions.json from the topology module.

Permissions are derived from what each service declares, binds, consumes and publishes:
  configure  what it declares (so start order does not matter on a fresh vhost)
  write      exchanges it publishes to, and queues it binds (binding needs write on them)
  read       queues it consumes, and exchanges it binds queues to
So the public worker can read `jobs.public` but not `jobs.private`, and only the router
reads `jobs.router.intake`. Users carry no password: set one per user at deploy time
(deploy/rabbitmq/apply.py, or `rabbitmqctl change_password`).

`python -m devtools.definitions > deploy/rabbitmq/definitions.json`
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import RabbitExchange, RabbitQueue

from shared import topology
from shared.contracts.jobs import Site

VHOST = "hybridq"
ALL_PUBLISHED = (topology.EVENTS, topology.DISPATCH, topology.DELAY, topology.DEAD_LETTER_EXCHANGE)


@dataclass(frozen=True)
class ServiceAccess:
    user: str
    cancel_queue_prefix: str | None
    bindings: tuple[topology.Binding, ...]
    consumes: tuple[RabbitQueue, ...]
    publishes: tuple[RabbitExchange, ...]


def _work(site: Site) -> RabbitQueue:
    return topology.work_queue(site)


SERVICES = (
    ServiceAccess(
        "hybridq-router",
        topology.cancel_queue_prefix("router"),
        topology.router_bindings(),
        (topology.ROUTER_INTAKE, topology.ROUTER_DUE),
        ALL_PUBLISHED,
    ),
    ServiceAccess(
        "hybridq-public-worker",
        topology.cancel_queue_prefix("public-worker"),
        topology.worker_bindings(),
        (_work(Site.PUBLIC),),
        ALL_PUBLISHED,
    ),
    ServiceAccess(
        "hybridq-private-worker",
        topology.cancel_queue_prefix("private-worker"),
        topology.worker_bindings(),
        (_work(Site.PRIVATE),),
        ALL_PUBLISHED,
    ),
    ServiceAccess(
        "hybridq-status",
        None,
        topology.status_bindings(),
        (topology.STATUS_EVENTS, topology.STATUS_DEAD_LETTERS, topology.STATUS_GROUPS[0]),
        (topology.INTAKE, *ALL_PUBLISHED),
    ),
)


def _regex(names: Iterable[str], prefixes: Iterable[str | None] = ()) -> str:
    parts = sorted({re.escape(n) for n in names})
    parts += [re.escape(p) + ".*" for p in prefixes if p]
    return "^(" + "|".join(parts) + ")$" if parts else "^$"


def permissions(service: ServiceAccess) -> dict[str, str]:
    queues = {q.name for q, _ in service.bindings}
    bound_to = {e.name for _, e in service.bindings}
    cancel = [service.cancel_queue_prefix]
    listens = {topology.EVENTS.name} if service.cancel_queue_prefix else set()
    return {
        "configure": _regex({e.name for e in topology.BASE_EXCHANGES} | queues, cancel),
        "write": _regex({e.name for e in service.publishes} | queues, cancel),
        "read": _regex({q.name for q in service.consumes} | bound_to | listens, cancel),
    }


def _arguments(queue: RabbitQueue) -> dict[str, Any]:
    return dict(queue.arguments or {})


def definitions() -> dict[str, Any]:
    queues = topology.all_queues()
    bindings = topology.status_bindings()
    return {
        "rabbitmq_version": "3.13.0",
        "users": [
            {
                "name": s.user,
                "password_hash": "",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for s in SERVICES
        ]
        + [
            {
                "name": "hybridq-operator",
                "password_hash": "",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        ],
        "vhosts": [{"name": VHOST}],
        "permissions": [{"user": s.user, "vhost": VHOST, **permissions(s)} for s in SERVICES]
        + [
            {
                "user": "hybridq-operator",
                "vhost": VHOST,
                "configure": ".*",
                "write": ".*",
                "read": ".*",
            }
        ],
        "policies": [
            {
                "vhost": VHOST,
                "name": "hybridq-work-queue-limits",
                "pattern": r"^jobs\.(public|private)$",
                "apply-to": "queues",
                "priority": 0,
                "definition": {"max-length": 1_000_000, "overflow": "reject-publish"},
            },
            {
                "vhost": VHOST,
                "name": "hybridq-router-delivery-limit",
                "pattern": r"^jobs\.router\.(intake|due)$",
                "apply-to": "queues",
                "priority": 0,
                "definition": {
                    "delivery-limit": topology.INTAKE_DELIVERY_LIMIT,
                    "dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE.name,
                },
            },
            {
                "vhost": VHOST,
                "name": "hybridq-dead-letter-retention",
                "pattern": r"^jobs\.dead-letter$",
                "apply-to": "queues",
                "priority": 0,
                "definition": {"max-length": 1_000_000, "overflow": "drop-head"},
            },
        ],
        "exchanges": [
            {
                "name": e.name,
                "vhost": VHOST,
                "type": e.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in topology.BASE_EXCHANGES
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": VHOST,
                "durable": True,
                "auto_delete": False,
                "arguments": _arguments(q),
            }
            for q in queues
        ],
        "bindings": [
            {
                "source": e.name,
                "vhost": VHOST,
                "destination": q.name,
                "destination_type": "queue",
                "routing_key": q.routing(),
                "arguments": {},
            }
            for q, e in bindings
        ],
    }


def render() -> str:
    return json.dumps(definitions(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
