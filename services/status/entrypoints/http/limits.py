"""Request body limits, enforced on the bytes received however they are sent, and the
one kind of body the API reads: JSON.

A Content-Length check alone lets a chunked body (no Content-Length) through, so this
ASGI middleware counts what it receives and stops reading at the limit: the app sees a
body only once it is whole and within bounds. It also refuses JSON nested deeper than
MAX_JSON_DEPTH (a clean 422, where the parser would otherwise hit Python's recursion
limit). A body sent as anything but JSON (a form, plain text, no Content-Type) gets 415
naming the header to send, before any route tries to read it.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.status.entrypoints.http.errors import error_body
from shared.contracts.jobs import MAX_MESSAGE_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024
MAX_JOB_BYTES = MAX_MESSAGE_BYTES
"""`POST /jobs`: the contract's size of a whole JobSubmitted message."""
MAX_BATCH_BYTES = 8 * 1024 * 1024
"""`POST /jobs/batch`: up to 1,000 jobs (each still at most MAX_JOB_BYTES as a message)."""
MAX_JSON_DEPTH = 64

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def body_limit(method: str, path: str) -> int:
    if method == "POST" and path.rstrip("/") == "/jobs":
        return MAX_JOB_BYTES
    if method == "POST" and path.rstrip("/") == "/jobs/batch":
        return MAX_BATCH_BYTES
    return MAX_BODY_BYTES


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects; brackets inside strings do not count."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be too deep: skip the scan
    depth = deepest = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def _too_large(limit: int) -> dict[str, Any]:
    return error_body(f"request body over {limit} bytes ({limit // 1024} KiB)")


def is_json(content_type: str) -> bool:
    """`application/json`, or any `application/*+json`, whatever its parameters."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _not_json(content_type: str) -> dict[str, Any]:
    given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    detail = f"the body must be JSON sent with Content-Type: application/json (got {given})"
    return error_body(detail, [("(body)", detail)])


class BodyLimit:
    """Read the whole body (up to its limit) before the app runs; 413 past the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, _too_large(limit))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, 413, _too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        if body and not is_json(content_type):
            await _answer(send, 415, _not_json(content_type))
            return
        if json_depth(body) > MAX_JSON_DEPTH:
            error = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            await _answer(send, 422, error_body(error, [("(body)", error)]))
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body first, then the client's own messages (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
