"""Connections to a RabbitMQ cluster: `AMQP_URL` may name several nodes, comma-separated.

A service connects to the first node that answers and, when that node is lost, moves on to
the next one (round robin), restoring its channels, declarations and consumers there: the
quorum queues it uses live on every node. What was in flight when the node died is not
lost: a delivery the service had not acked is redelivered by the broker (to this service
on its new connection, or to another replica), and a publish whose confirm never came
raises, so the delivery being handled is not acked and is processed (and published) again.

aio-pika's robust connection reconnects to one URL; `FailoverConnection` is the one place
that knows how it picks that URL (it reads `self.url` once per connection attempt), and
tests/unit/test_connection.py fails if a new aio-pika release reads it differently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import aio_pika
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from faststream.rabbit import RabbitBroker
from yarl import URL


def node_urls(amqp_url: str) -> list[str]:
    """The node URLs of an `AMQP_URL` setting (one, or several comma-separated)."""
    urls = [u.strip() for u in amqp_url.split(",") if u.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    return urls


class FailoverConnection(RobustConnection):
    """A robust connection that tries the next node's URL after a lost connection or a
    failed connection attempt."""

    def __init__(
        self,
        url: URL,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        node_urls: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self._urls = [URL(u) for u in node_urls] or [URL(url)]
        self._index = 0
        self._move_on = False
        super().__init__(self._urls[0], loop=loop, **kwargs)
        self._move_on = False  # reading the URL's query while constructing is no attempt

    @property
    def url(self) -> URL:
        """Read once per connection attempt: after a failure or a loss, the next node."""
        if self._move_on:
            self._index = (self._index + 1) % len(self._urls)
        self._move_on = True  # until this attempt connects
        return self._urls[self._index]

    @url.setter
    def url(self, value: URL) -> None:
        if hasattr(self, "_urls"):
            self._urls[self._index] = URL(value)

    @property
    def current_url(self) -> URL:
        return self._urls[self._index]

    def __str__(self) -> str:
        url = self.current_url
        return str(url.with_password("******") if url.password else url)

    async def _on_connected(self) -> None:
        self._move_on = False
        await super()._on_connected()

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        self._move_on = True
        await super()._on_connection_close(closing)


async def connect(amqp_url: str, **kwargs: Any) -> AbstractRobustConnection:
    """A robust connection to one of the nodes of `amqp_url`, moving on when it is lost."""
    urls = node_urls(amqp_url)
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        urls[0], connection_class=FailoverConnection, node_urls=urls, **kwargs
    )
    return connection


class FailoverBroker(RabbitBroker):
    """FastStream's RabbitBroker on a `FailoverConnection` over every node of `AMQP_URL`.

    `_connect` is FastStream 0.7's own, but for the connection class (a test pins it).
    """

    def __init__(self, amqp_url: str, **kwargs: Any) -> None:
        self.node_urls = node_urls(amqp_url)
        super().__init__(self.node_urls[0], **kwargs)

    async def _connect(self) -> RobustConnection:
        kwargs = {**self._connection_kwargs, "url": self.node_urls[0]}
        connection = cast(
            RobustConnection,
            await aio_pika.connect_robust(
                **kwargs, connection_class=FailoverConnection, node_urls=self.node_urls
            ),
        )
        for close_callback in self._on_close:
            connection.close_callbacks.add(close_callback)
        for reconnect_callback in self._on_reconnected:
            connection.reconnect_callbacks.add(reconnect_callback)
        if self._channel is None:
            self.config.connect(connection)
            self._channel = await self.config.channel_manager.get_channel()
        return connection
