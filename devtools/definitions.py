"""Generate deploy/rabbitmq/definitions.json from the topology module.

Permissions are derived from what each service declares, binds, consumes and publishes:
  configure  what it may declare (and so delete): the router and the status service
             declare the whole topology they use; a worker owns only its work queue and
             checks the rest exists (shared/topology.py `declare`)
  write      exchanges it publishes to, and queues it binds (binding needs write on them)
  read       queues it consumes, and exchanges it binds queues to
  topic      on the topic exchanges it writes to, the routing keys it may use: a worker
             publishes only its own site's event batches (`events.<site>`; what each event
             may say is checked by the consumers, shared/identity.py) and dispatches only
             to its own site; only the status service publishes `events.status`, which
             carries cancellations
So the public worker can read `jobs.public` but not `jobs.private`, cannot delete or bind
`jobs.private`, and only the router reads `jobs.router.intake`. Nobody may write to the
default exchange (`amq.default`). Users carry no password: set one per user at deploy
time (deploy/rabbitmq/apply.py, or `rabbitmqctl change_password`).

`python -m devtools.definitions > deploy/rabbitmq/definitions.json`
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue

from shared import identity, topology
from shared.contracts import batches
from shared.contracts.jobs import Site

VHOST = "hybridq"
ANY_KEY: tuple[str, ...] = ()
WORKER_MESSAGE_KEYS = ("worker.heartbeat", "worker.lease", "worker.released")
"""Worker heartbeats and attempt leases (`worker.*` on `jobs.events`)."""


@dataclass(frozen=True)
class ServiceAccess:
    user: str
    configures: frozenset[str]
    binds: tuple[topology.Binding, ...]
    consumes: tuple[RabbitQueue, ...]
    publishes: Mapping[RabbitExchange, tuple[str, ...]] = field(default_factory=dict)
    """Exchange -> the routing keys it may use there (ANY_KEY: not limited)."""


def _names(bindings: Iterable[topology.Binding]) -> frozenset[str]:
    return frozenset({e.name for e in topology.BASE_EXCHANGES} | {q.name for q, _ in bindings})


def _worker(site: Site, user: str) -> ServiceAccess:
    queue = topology.work_queue(site)
    return ServiceAccess(
        user,
        frozenset({queue.name}),
        ((queue, topology.DISPATCH),),
        (queue, topology.CANCELLATIONS),
        {
            topology.EVENTS: (
                batches.routing_key(site.value),  # its site's event batches, nothing else
                *WORKER_MESSAGE_KEYS,
                topology.CANCELLATIONS_SYNC_KEY,
                topology.LINK_SYNC_KEY,  # a barrier marker behind the hybrid link
            ),
            topology.DISPATCH: (site.value,),  # a job handed back on shutdown
            topology.DELAY: ANY_KEY,  # retries; the router checks whose site (user_id)
            topology.DEAD_LETTER_EXCHANGE: ANY_KEY,
            topology.INTAKE: (topology.SUBMITTED_KEY,),  # child jobs, placed by the router
        },
    )


SITES = (Site.PUBLIC.value, Site.PRIVATE.value)
SERVICES = (
    ServiceAccess(
        "hybridq-router",
        _names(topology.router_bindings()),
        topology.router_bindings(),
        (topology.ROUTER_INTAKE, topology.ROUTER_DUE, topology.CANCELLATIONS),
        {
            topology.EVENTS: (
                batches.routing_key(batches.ROUTER_SOURCE),
                topology.CANCELLATIONS_SYNC_KEY,
            ),
            topology.DISPATCH: SITES,
            topology.DELAY: ANY_KEY,
            topology.DEAD_LETTER_EXCHANGE: ANY_KEY,
        },
    ),
    _worker(Site.PUBLIC, identity.PUBLIC_WORKER_USER),
    _worker(Site.PRIVATE, identity.PRIVATE_WORKER_USER),
    ServiceAccess(
        "hybridq-status",
        _names(topology.status_bindings()),
        topology.status_bindings(),
        (
            topology.STATUS_EVENTS,
            topology.STATUS_DEAD_LETTERS,
            topology.STATUS_WORKERS,
        ),
        {
            topology.INTAKE: (topology.SUBMITTED_KEY,),
            topology.EVENTS: (batches.routing_key(batches.STATUS_SOURCE),),
            topology.DISPATCH: SITES,  # redrive
            topology.DELAY: ANY_KEY,
            topology.DEAD_LETTER_EXCHANGE: ANY_KEY,
        },
    ),
)


def _regex(names: Iterable[str]) -> str:
    parts = sorted({re.escape(n) for n in names})
    return "^(" + "|".join(parts) + ")$" if parts else "^$"


def permissions(service: ServiceAccess) -> dict[str, str]:
    return {
        "configure": _regex(service.configures),
        "write": _regex({e.name for e in service.publishes} | {q.name for q, _ in service.binds}),
        "read": _regex({q.name for q in service.consumes} | {e.name for _, e in service.binds}),
    }


def topic_permissions(service: ServiceAccess) -> list[dict[str, str]]:
    """Routing keys per topic exchange (RabbitMQ checks them on topic exchanges only)."""
    return [
        {"exchange": exchange.name, "write": _regex(keys), "read": ".*"}
        for exchange, keys in sorted(service.publishes.items(), key=lambda item: item[0].name)
        if keys and exchange.type is ExchangeType.TOPIC
    ]


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
        "topic_permissions": [
            {"user": s.user, "vhost": VHOST, **topic}
            for s in SERVICES
            for topic in topic_permissions(s)
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
