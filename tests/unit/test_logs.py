"""The log filter for the client libraries' connection noise (shared/logs.py): what it
drops is what hybridq.connection already says, and it fails here if a release rewords it."""

from __future__ import annotations

import ast
import inspect
import logging

import aio_pika.robust_connection
import aio_pika.tools
import aiormq.connection

from shared import logs


def strings(module: object) -> set[str]:
    """Every string literal of a module (adjacent literals joined, as Python does)."""
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


LITERALS = {
    "aiormq.connection": strings(aiormq.connection),
    "aio_pika.robust_connection": strings(aio_pika.robust_connection),
    "aio_pika.tools": strings(aio_pika.tools),
}


def logged_by(logger: str, template: str) -> bool:
    return any(literal.startswith(template) for literal in LITERALS[logger])


def test_every_line_the_filter_knows_is_still_logged_by_its_library() -> None:
    known = [*logs.CONNECTION_NOISE, logs.RETRYING, logs.CALLBACK_ERROR]
    for logger, template in known:
        assert logged_by(logger, template), (logger, template)


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


class Cb:
    def __repr__(self) -> str:
        return "<OneShotCallback: cb=<bound method RobustChannel._on_close of <...>>>"


def test_connection_noise_is_dropped_and_other_lines_pass() -> None:
    noise = logs.ConnectionNoise()
    lost = record("aiormq.connection", "Cancelling cause reader exited abnormally")
    fallout = record(
        "aio_pika.tools", "Callback %r error: %s: %s", Cb(), "ChannelInvalidStateError", "x"
    )
    other = record("aio_pika.tools", "Callback %r error: %s: %s", object(), "KeyError", "k")
    mine = record("hybridq.connection", "broker connection lost; reconnecting")
    assert [noise.filter(r) for r in (lost, fallout, other, mine)] == [False, False, True, True]


def test_a_failed_reconnection_attempt_is_said_once_a_minute_per_node() -> None:
    noise = logs.ConnectionNoise()
    template = 'Connection attempt to "%s" failed: %s. Reconnecting after %r seconds.'
    attempts = [
        record("aio_pika.robust_connection", template, node, "refused", 1)
        for node in ("amqp://a/", "amqp://a/", "amqp://b/")
    ]
    assert [noise.filter(r) for r in attempts] == [True, False, True]
