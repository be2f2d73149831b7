"""Plumbing every FastStream service shares: raw-message handling with explicit acks."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.message import StreamMessage
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.subscriber import RabbitSubscriber

from shared import messaging
from shared.errors import PermanentError, TLSRefused
from shared.holding import DeliveryLost, through_trouble

log = logging.getLogger("hybridq.service")

EXIT_TLS_REFUSED = 4
"""The exit status of a service whose broker's TLS could not be verified at start."""

RawHandler = Callable[[bytes, str], Awaitable[str]]


def delivery_alive(msg: RabbitMessage) -> bool:
    """Whether the channel the delivery came on is still open: only then can it be acked.
    aio-pika's `IncomingMessage.channel` raises once that channel is closed; FastStream's
    in-memory test broker gives its deliveries a mock instead of a channel (alive)."""
    channel = messaging.delivery_channel(msg.raw_message)
    return channel is None or not channel.is_closed


async def settle(msg: RabbitMessage, queue: str, handle: RawHandler) -> None:
    """Run `handle` on a delivery and settle it explicitly. While the broker is in trouble
    the delivery is held and `handle` tried again in-process (shared/holding.py): a
    failover spends none of its delivery budget. Handlers are idempotent on a second try,
    as on a redelivery (de-duplication by job_id, deterministic event ids).

    Success (the handler has already published whatever follows): ack.
    A permanent error the handler did not deal with: reject, so the queue's
    dead-letter arguments route it to `jobs.dead-letter`.
    The delivery's channel lost while it was held: nothing (the broker redelivers it).
    Anything else (a failure that is neither the broker's nor the message's: a bug, an
    unroutable publish): nack with requeue, to try again; the queue's delivery limit keeps
    a message that always fails from looping.
    """
    try:
        await through_trouble(
            lambda: handle(msg.body, queue), lambda: delivery_alive(msg), f"delivery from {queue}"
        )
    except PermanentError:
        log.exception("permanent failure; rejecting to dead-letter", extra={"queue": queue})
        await msg.reject(requeue=False)
    except DeliveryLost:
        log.info("delivery lost with its channel; the broker redelivers it", extra={"queue": queue})
    except Exception:
        log.exception("transient failure; requeueing", extra={"queue": queue})
        await msg.nack(requeue=True)
    else:
        await msg.ack()


async def the_delivery(msg: StreamMessage[Any]) -> StreamMessage[Any]:
    """Decoder that hands a handler the delivery itself, body untouched: handlers parse
    (and dead-letter) the body themselves, so a body that is not JSON reaches them instead
    of failing inside FastStream.

    Brokers from `shared.bus.make_broker` run handlers without dependency injection
    (`apply_types=False`): resolving a `RabbitMessage` parameter through FastDepends's
    context runs in a worker thread, a thread hop for every delivery (docs/performance.md
    has its cost). The handler gets this decoder's result.
    """
    return msg


async def stop_deliveries(subscriber: RabbitSubscriber) -> None:
    """Cancel the AMQP consumer now, so nothing new is delivered while we drain.

    FastStream's `subscriber.stop()` sends basic.cancel only after the handlers in flight
    finish; until then the broker keeps delivering (a job handed back on shutdown would
    come straight back, unacked, and return redelivered). The consumer tag is cleared,
    so FastStream's own stop() then skips its cancel.
    """
    await messaging.cancel_consumer(subscriber)


def run(app: FastStream) -> None:
    """Run a FastStream service until SIGTERM/SIGINT, drain, and exit 0.

    FastStream handles the signals on the event loop; when the loop closes, asyncio puts
    the default actions back, so a second signal in that last moment (a terminal's Ctrl-C
    reaches every process, then a supervisor's SIGTERM follows) would kill the process
    after it had drained. Once the app has stopped, further signals are ignored instead
    (SIG_IGN: CPython resets Python-level handlers to the default while shutting down).

    A broker whose TLS cannot be verified at start (`TLSRefused`: wrong CA, a certificate
    for another host) is one log line and exit status EXIT_TLS_REFUSED, not a traceback.
    """

    async def serve() -> None:
        await app.run()
        ignore_late_signals()

    try:
        asyncio.run(serve())
    except TLSRefused as exc:
        log.critical(str(exc))
        sys.exit(EXIT_TLS_REFUSED)


def ignore_late_signals() -> None:
    """Drained: SIGTERM/SIGINT from now on are ignored, so a late one cannot turn the exit 0
    into a kill (called on the event loop, in place of its signal handlers; see `run`)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
