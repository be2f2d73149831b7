"""A webhook receiver for the tests: a small HTTP/1.1 server on loopback that records every
request (path, headers, body, the answer it gave) and can answer 500 to every n-th call,
redirect, or be down (stopped and started again on the same port)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.status.domain.webhooks import verify


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signed_by(self, secret: str) -> bool:
        return verify(
            secret,
            self.headers.get("x-hybridq-timestamp", ""),
            self.body,
            self.headers.get("x-hybridq-signature", ""),
        )


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    fail_every: int = 0  # answer 500 to every n-th call (0: never)
    answer: Callable[[str], tuple[int, dict[str, str]]] | None = None  # path -> answer
    calls: list[Call] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _count: int = 0

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Down: nothing listens and open connections are cut."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def delivered(self, path: str | None = None) -> list[Call]:
        return [
            c for c in self.calls if 200 <= c.answered < 300 and (path is None or c.path == path)
        ]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._count += 1
                extra: dict[str, str] = {}
                if self.fail_every and self._count % self.fail_every == 0:
                    status = 500
                elif self.answer is not None:
                    status, extra = self.answer(path)
                else:
                    status = 200
                self.calls.append(Call(path, headers, body, status))
                more = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\n{more}Content-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
