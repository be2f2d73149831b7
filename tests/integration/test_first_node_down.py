"""A service started while the first node of `AMQP_URL` is down connects to the next one
(contract §1: several comma-separated URLs, the nodes of a cluster)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from shared.bus import make_broker
from shared.connection import connect

pytestmark = pytest.mark.connected


def with_dead_node_first(amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    dead = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:1").geturl()
    return f"{dead},{amqp_url}"


async def test_connect_moves_on_from_a_node_that_is_down(amqp_url: str) -> None:
    connection = await connect(with_dead_node_first(amqp_url))
    try:
        channel = await connection.channel()
        assert not channel.is_closed
    finally:
        await connection.close()


async def test_a_broker_started_while_the_first_node_is_down_connects(amqp_url: str) -> None:
    broker = make_broker(with_dead_node_first(amqp_url), prefetch=1)
    await broker.connect()
    try:
        assert await broker.ping(timeout=5)
    finally:
        await broker.stop()
