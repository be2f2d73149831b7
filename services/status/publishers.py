"""Which site a message's publisher belongs to, from the AMQP `user_id` it carries.

RabbitMQ validates `user_id` against the connection's user, so a worker cannot claim to be
another. Only the two worker users are restricted (to their own site's jobs); any other or
absent user_id means no restriction. Local until the messaging helper's shared mapping
of broker users to sites lands (devtools/definitions.py names the users).
"""

from __future__ import annotations

from shared.contracts.jobs import Site

WORKER_USERS = {
    "hybridq-public-worker": Site.PUBLIC,
    "hybridq-private-worker": Site.PRIVATE,
}


def worker_site(user_id: object) -> Site | None:
    """The site of a worker broker user; None for anyone else (unrestricted)."""
    return WORKER_USERS.get(user_id) if isinstance(user_id, str) else None
