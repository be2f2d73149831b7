"""The worker's pool of warm processes for plain-function handlers.

`WORKER_CONCURRENCY` processes are started with the worker (`shared.worker.child`), each
in its own session, each running one attempt at a time. An attempt that ends normally
gives its process back; an attempt that is cancelled (its timeout, a cancel, a shutdown
hand-back) or whose process dies has its process group SIGKILLed and reaped at once, and a
new process takes its place in the background. concurrent.futures cannot do this (it
cannot kill one task), hence this small pool over sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection

from shared.errors import HandlerProcessDied
from shared.worker.child import Failed, Progress, RunRequest, Submit, Submitted, Succeeded

log = logging.getLogger("hybridq.worker.pool")

READY_SECONDS = 120.0
RESPAWN_PAUSE_SECONDS = 1.0
_GONE = object()

OnProgress = Callable[[float, str], Awaitable[None]]
OnSubmit = Callable[[dict[str, object]], Awaitable[str | None]]


class PoolProcess:
    """One pool process and the worker's end of its socket (read on the event loop)."""

    def __init__(self, proc: asyncio.subprocess.Process, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)
        self._reading = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self._reading and self.proc.returncode is None

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self.inbox.put_nowait(self.conn.recv())
        except (EOFError, OSError):
            self._stop_reading()
            self.inbox.put_nowait(_GONE)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self.conn.fileno())

    async def receive(self) -> object:
        message = await self.inbox.get()
        if message is _GONE:
            self.inbox.put_nowait(_GONE)
            code = await self.proc.wait()
            raise HandlerProcessDied(f"the handler's process died (exit code {code})")
        return message

    def send(self, message: object) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise HandlerProcessDied(f"the handler's process is gone: {exc}") from exc

    def kill(self) -> None:
        """SIGKILL the whole process group now (synchronous: nothing can skip it)."""
        self._stop_reading()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def reap(self) -> None:
        await self.proc.wait()
        self.conn.close()


class ProcessPool:
    def __init__(self, size: int, modules: Sequence[str] = ()) -> None:
        self.size = size
        self.modules = list(modules)
        self._idle: asyncio.Queue[PoolProcess] = asyncio.Queue()
        self._live: set[PoolProcess] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False

    async def start(self) -> None:
        """Start the processes in the background; the first plain job waits for one."""
        if self._started:
            return
        self._started = True
        for _ in range(self.size):
            self._respawn(pause=0)

    def pids(self) -> list[int]:
        """Process ids of the pool's live processes (tests check a killed one is gone)."""
        return [p.pid for p in self._live]

    async def run(
        self, request: RunRequest, on_progress: OnProgress, on_submit: OnSubmit
    ) -> Succeeded | Failed:
        """Run one attempt in a free process; relay its reports while it runs."""
        await self.start()
        process = await self._idle.get()
        while not process.alive:  # died while idle (OOM killer, an operator): replace it
            self._live.discard(process)
            await process.reap()
            self._respawn(pause=0)
            process = await self._idle.get()
        try:
            process.send(request)
            while True:
                message = await process.receive()
                if isinstance(message, Progress):
                    await on_progress(message.percent, message.message)
                elif isinstance(message, Submit):
                    process.send(Submitted(await on_submit(message.request)))
                elif isinstance(message, Succeeded | Failed):
                    break
        except BaseException:
            process.kill()  # before anything else: the handler stops here, for certain
            self._live.discard(process)
            await asyncio.shield(self._replace(process))
            raise
        self._idle.put_nowait(process)
        return message

    async def _replace(self, process: PoolProcess) -> None:
        await process.reap()
        log.info("pool process killed and reaped; starting another", extra={"pid": process.pid})
        self._respawn(pause=0)

    def _respawn(self, pause: float) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._spawn(pause), name="pool-spawn")
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _spawn(self, pause: float) -> None:
        await asyncio.sleep(pause)
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.worker.child",
                str(theirs.fileno()),
                *self.modules,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError:
            ours.close()
            log.exception("cannot start a pool process; trying again")
            self._respawn(RESPAWN_PAUSE_SECONDS)
            return
        finally:
            theirs.close()
        process = PoolProcess(proc, Connection(ours.detach()))
        try:
            async with asyncio.timeout(READY_SECONDS):
                ready = await process.receive()
            if ready != "ready":
                raise HandlerProcessDied(f"unexpected first message {ready!r}")
        except (HandlerProcessDied, TimeoutError):
            log.exception("a pool process did not start; trying again")
            process.kill()
            await process.reap()
            self._respawn(RESPAWN_PAUSE_SECONDS)
            return
        except BaseException:
            process.kill()
            await asyncio.shield(process.reap())
            raise
        if self._closed:
            process.kill()
            await process.reap()
            return
        self._live.add(process)
        self._idle.put_nowait(process)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._spawning):
            task.cancel()
        processes = list(self._live)
        self._live.clear()
        for process in processes:
            process.kill()
        for process in processes:
            await process.reap()
