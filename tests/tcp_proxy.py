"""A TCP proxy a test can cut, stall and restore, to take a server away from a process.

`cut` drops every connection and refuses new ones (a crashed server, a reset).
`stall` stops forwarding in both directions without closing anything (a dead network
path: packets vanish, no RST, no FIN): only heartbeats or timeouts notice it. New
connections made while stalled are accepted and stall too. `restore` ends either.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    def __init__(self, target_port: int, listen_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listen_port = listen_port
        self.enabled = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                await self._flowing.wait()  # stalled: read nothing, forward nothing
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # stalled while reading: hold the bytes
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""

        def drop() -> None:
            self.enabled = False
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(drop)

    def stall(self) -> None:
        """Stop forwarding without closing: the connections hang until heartbeats notice."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def restore(self) -> None:
        """Accept and forward again (after `cut` or `stall`)."""
        assert self._flowing is not None

        def resume() -> None:
            self.enabled = True
            assert self._flowing is not None
            self._flowing.set()

        self._loop.call_soon_threadsafe(resume)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
