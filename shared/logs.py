"""Structured JSON logs: one object a line, with `job_id` whenever a line is about a job."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from shared import messaging

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                line[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


CONNECTION_NOISE = {
    # a lost connection (shared/connection.py logs "broker connection lost", once)
    ("aiormq.connection", "Cancelling cause reader exited abnormally"),
    (
        "aiormq.connection",
        'Unexpected connection close from remote "%s", '
        "Connection.Close(reply_code=%r, reply_text=%r)",
    ),
    # each refused attempt, said again by aio-pika's own line (throttled below)
    ("aiormq.connection", "error when creating transport: %r"),
}
"""aiormq's lines about a connection's loss: each says what hybridq.connection says once
per connection (tests/unit/test_logs.py fails if a release rewords one)."""
RETRYING = ("aio_pika.robust_connection", 'Connection attempt to "%s" failed: %s. ')
"""aio-pika's line for every failed reconnection attempt (every `reconnect_interval`)."""
CALLBACK_ERROR = ("aio_pika.tools", "Callback %r error: %s: %s")
"""aio-pika's line for a callback that raised: among them its robust channel failing to
reopen on a connection that is gone, which the reconnection restores anyway."""
RETRYING_EVERY = 60.0


class ConnectionNoise(logging.Filter):
    """The client libraries' lines about a broker connection being lost, refused or
    restored, reduced to what says something: hybridq.connection logs one line when a
    connection is lost and one when it is back; aio-pika's "attempt failed" line (the
    cause while the broker stays away) passes once a minute per node; other lines of the
    libraries pass unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._retrying: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else ""
        if (record.name, template) in CONNECTION_NOISE:
            return False
        if record.name == RETRYING[0] and template.startswith(RETRYING[1]):
            return self._once_a_minute(record)
        if (record.name, template) == CALLBACK_ERROR:
            return not _lost_connection_fallout(record)
        return True

    def _once_a_minute(self, record: logging.LogRecord) -> bool:
        key = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        now = time.monotonic()
        if now - self._retrying.get(key, -RETRYING_EVERY) < RETRYING_EVERY:
            return False
        self._retrying[key] = now
        return True


def _lost_connection_fallout(record: logging.LogRecord) -> bool:
    """A robust channel's close callback that failed because its connection is gone."""
    args = record.args if isinstance(record.args, tuple) else ()
    if len(args) != 3 or messaging.CHANNEL_CLOSE_CALLBACK not in str(args[0]):
        return False
    kind, said = str(args[1]), str(args[2])
    return kind == "ChannelInvalidStateError" or (kind == "RuntimeError" and "closed" in said)


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(ConnectionNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
