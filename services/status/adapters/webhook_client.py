"""Sending a webhook delivery over HTTP(S), with SSRF protection.

The host is resolved here, every address it resolves to is checked
(domain/webhooks.checked_addresses) and the request goes to that checked address itself
(the URL's host only in the `Host` header and, for https, in SNI and the certificate check):
no second lookup between check and connect can point it elsewhere. Redirects are not
followed, proxies from the environment are not used, the answer's body is not read, and no
answer within 10 s is a failed attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

import httpx

from services.status.domain import webhooks as rules
from services.status.domain.webhooks import RefusedUrl, Target, Webhook
from services.status.service_layer.unit_of_work import Delivery
from services.status.service_layer.webhooks import Answer

Resolver = Callable[[str, int], Awaitable[list[str]]]
USER_AGENT = "hybridq-webhooks/1"


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (an address literal is itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked(
    url: str, allowed: Iterable[str], resolver: Resolver = resolve
) -> tuple[Target, str]:
    """The URL's parts and the address a delivery connects to; RefusedUrl if none may."""
    t = rules.target(url)
    try:
        addresses = await resolver(t.host, t.port)
    except OSError as exc:
        raise RefusedUrl(f"{t.host} does not resolve: {exc}") from exc
    return t, rules.checked_addresses(t.host, addresses, allowed)[0]


def _origin(t: Target) -> str:
    host = f"[{t.host}]" if ":" in t.host else t.host
    default = 443 if t.scheme == "https" else 80
    return host if t.port == default else f"{host}:{t.port}"


class HttpSender:
    """The delivery port on httpx (one connection pool for every webhook)."""

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver = resolve,
        answer_seconds: float = rules.ANSWER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.allowed = tuple(allowed_hosts)
        self.resolver = resolver
        self.answer_seconds = answer_seconds
        self.clock = clock
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(answer_seconds),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, hook: Webhook, delivery: Delivery) -> Answer:
        try:
            t, address = await checked(hook.url, self.allowed, self.resolver)
        except RefusedUrl as exc:
            return Answer(error=f"refused: {exc}")
        body = delivery.body.encode()
        timestamp = int(self.clock())
        headers = {
            "Host": _origin(t),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Hybridq-Event-Id": str(delivery.event_id),
            "X-Hybridq-Timestamp": str(timestamp),
            "X-Hybridq-Signature": rules.signature(hook.secret, timestamp, body),
        }
        literal = f"[{address}]" if ":" in address else address
        url = f"{t.scheme}://{literal}:{t.port}{t.path}"
        extensions = {"sni_hostname": t.host} if t.scheme == "https" else {}
        try:
            async with asyncio.timeout(self.answer_seconds):
                request = self.client.build_request(
                    "POST", url, content=body, headers=headers, extensions=extensions
                )
                response = await self.client.send(request, stream=True)
                await response.aclose()  # the answer's body is not read
        except TimeoutError:
            return Answer(error=f"no answer within {self.answer_seconds:g} s")
        except httpx.HTTPError as exc:
            return Answer(error=f"{type(exc).__name__}: {exc}"[:500])
        return Answer(status_code=response.status_code)

    async def close(self) -> None:
        await self.client.aclose()
