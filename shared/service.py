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

from shared.acks import Acks
from shared.errors import PermanentError, TLSRefused

log = logging.getLogger("hybridq.service")

EXIT_TLS_REFUSED = 4
"""The exit status of a service whose broker's TLS could not be verified at start."""

RawHandler = Callable[[bytes, str], Awaitable[str]]


async def settle(
    msg: RabbitMessage, queue: str, handle: RawHandler, acks: Acks | None = None
) -> None:
    """Run `handle` on a delivery and settle it explicitly.

    Success (the handler has already published whatever follows): ack -- through `acks`,
    when given, several of the channel's deliveries to one frame (shared/acks.py).
    A permanent error the handler did not deal with: reject, so the queue's
    dead-letter arguments route it to `jobs.dead-letter`.
    Anything else (broker hiccup while publishing): nack with requeue, to try again;
    the queue's delivery limit keeps a message that always fails from looping.
    """
    try:
        await handle(msg.body, queue)
    except PermanentError:
        log.exception("permanent failure; rejecting to dead-letter", extra={"queue": queue})
        await msg.reject(requeue=False)
        if acks is not None:
            acks.settled(msg)
    except Exception:
        log.exception("transient failure; requeueing", extra={"queue": queue})
        await msg.nack(requeue=True)
        if acks is not None:
            acks.settled(msg)
    else:
        if acks is not None:
            await acks.ack(msg)
        else:
            await msg.ack()


async def the_delivery(msg: StreamMessage[Any]) -> StreamMessage[Any]:
    """Decoder that hands a handler the delivery itself, body untouched: handlers parse
    (and dead-letter) the body themselves, so a body that is not JSON reaches them instead
    of failing inside FastStream.

    Brokers from `shared.bus.make_broker` run handlers without dependency injection
    (`apply_types=False`): resolving a `RabbitMessage` parameter through FastDepends's
    context runs in a worker thread, a thread hop for every delivery (a fifth of the
    status service's CPU in the bench profile). The handler gets this decoder's result.
    """
    return msg


async def stop_deliveries(subscriber: RabbitSubscriber) -> None:
    """Cancel the AMQP consumer now, so nothing new is delivered while we drain.

    FastStream's `subscriber.stop()` sends basic.cancel only after the handlers in flight
    finish; until then the broker keeps delivering (a job handed back on shutdown would
    come straight back, unacked, and return redelivered). The consumer tag is cleared,
    so FastStream's own stop() then skips its cancel.
    """
    queue = getattr(subscriber, "_queue_obj", None)
    tag = getattr(subscriber, "_consumer_tag", None)
    if queue is not None and tag is not None and not queue.channel.is_closed:
        await queue.cancel(tag)
        subscriber._consumer_tag = None


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
