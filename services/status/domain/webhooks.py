"""Webhooks' pure rules (contract v1.2 §5.2): which events a webhook wants, the signature a
receiver checks, when a failed delivery is tried again and when it is given up, and which
URLs and addresses a delivery may go to (SSRF protection)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

from shared.contracts.events import EVENT_TYPES as EVENT_CLASSES
from shared.contracts.events import AnyEvent

TERMINAL_EVENTS: tuple[str, ...] = (
    "JobSucceeded",
    "JobDeadLettered",
    "JobCancelled",
    "JobRejected",
)
"""What a webhook gets when it names no events: the events that end a job."""

EVENT_TYPES: frozenset[str] = frozenset(
    c.model_fields["type"].default for c in EVENT_CLASSES
)  # every lifecycle event's `type`

ANSWER_SECONDS = 10.0
"""A receiver that has not answered within this long has failed the attempt."""
GIVE_UP_AFTER = timedelta(hours=24)
"""A delivery is tried again for this long after its event was queued, then recorded failed."""
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 900.0


@dataclass(frozen=True)
class Webhook:
    webhook_id: UUID
    url: str
    events: tuple[str, ...]
    job_type: str | None
    secret: str
    created_at: datetime

    def wants(self, event_type: str, job_type: str | None) -> bool:
        return event_type in self.events and (self.job_type is None or self.job_type == job_type)


def wanted(
    hooks: Sequence[Webhook], events: Iterable[AnyEvent], job_types: dict[UUID, str | None]
) -> list[tuple[Webhook, AnyEvent]]:
    """Each (webhook, event) pair to deliver: `job_types` is each job's type as its view
    reads after the projection (the filter applies to it)."""
    return [
        (hook, event)
        for event in events
        for hook in hooks
        if hook.wants(event.type, job_types.get(event.job_id))
    ]


# -- signatures ---------------------------------------------------------------------------
SIGNATURE_PREFIX = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`X-Hybridq-Signature`: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, given: str) -> bool:
    """What a receiver does (docs/webhooks.md): recompute and compare in constant time."""
    try:
        expected = signature(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, given)


# -- retries ------------------------------------------------------------------------------
def backoff_seconds(
    failures: int, base: float = RETRY_BASE_SECONDS, cap: float = RETRY_MAX_SECONDS
) -> float:
    """The wait after the `failures`-th failed attempt (1, 2, ...): base, 2 x base, 4 x base
    ... up to `cap`."""
    return min(cap, base * 2.0 ** min(max(failures - 1, 0), 60))


def next_try(
    failures: int,
    queued_at: datetime,
    now: datetime,
    *,
    base: float = RETRY_BASE_SECONDS,
    cap: float = RETRY_MAX_SECONDS,
    give_up_after: timedelta = GIVE_UP_AFTER,
) -> datetime | None:
    """When to try a failed delivery again; None: it has been tried for `give_up_after`
    since it was queued and is given up."""
    at = now + timedelta(seconds=backoff_seconds(failures, base, cap))
    return None if at - queued_at > give_up_after else at


# -- where a delivery may go --------------------------------------------------------------
class RefusedUrl(ValueError):
    """A webhook URL that no delivery may go to (the message says why)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, without brackets
    port: int
    path: str  # path and query, at least "/"


def target(url: str) -> Target:
    """The parts of an http(s) URL a delivery needs; RefusedUrl for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("the URL must be http:// or https://")
    if not parts.hostname:
        raise RefusedUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("the URL may not carry a user name or password")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname.lower(), port or default, path)


def address_refusal(address: str) -> str | None:
    """Why a delivery may not connect to `address` (an IP address), or None if it may:
    loopback, link-local (cloud metadata), private, multicast, unspecified and reserved
    addresses are refused, an IPv4 address written as IPv6 included."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return f"{address} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def allowed_host(host: str, allowed: Iterable[str]) -> bool:
    """Whether `host` is listed in WEBHOOK_ALLOWED_HOSTS (names or addresses, any case)."""
    return host.lower().strip("[]") in {a.strip().lower().strip("[]") for a in allowed}


def checked_addresses(host: str, addresses: Sequence[str], allowed: Iterable[str]) -> list[str]:
    """The resolved `addresses` a delivery to `host` may connect to: all of them for an
    allowed host; otherwise every one must be public (one refused address refuses the
    host: a name that resolves to both is how rebinding tricks start)."""
    if not addresses:
        raise RefusedUrl(f"{host} does not resolve to any address")
    if allowed_host(host, allowed):
        return list(addresses)
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise RefusedUrl(
                f"{host}: {reason}; deliveries go to public addresses only "
                "(list the host in WEBHOOK_ALLOWED_HOSTS to allow it)"
            )
    return list(addresses)
