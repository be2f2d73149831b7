"""The status service's write side in a process of its own.

`python -m services.status` answers HTTP in its own process and runs the write side (the
event projection, the worker registry, the outbox relay, the group sweep, retention,
schedules, leases: `bootstrap.projecting`) in a child process, `python -m
services.status projector`. Reads then never wait behind a batch of events on the same
event loop (or, with threads, the same interpreter lock; docs/performance.md has the
figures). Both halves keep nothing of their own: either may be killed and
replaced, like any replica.

The parent (`WriteSide`) starts the child, starts it again if it dies (with a growing
pause, logged), and on shutdown sends it SIGTERM and waits for it to drain. The child
(`run`) drains on SIGTERM/SIGINT. It does not outlive its parent: when the parent is
killed, the kernel kills the child too (`prctl(PR_SET_PDEATHSIG, SIGKILL)` on Linux: a
killed service leaves nothing running, and what its write side held goes back to the
queues like any killed consumer's), and elsewhere the child drains once it sees it has
been re-parented (it looks every second).

Both halves count into one `/metrics` through prometheus-client's multiprocess mode: the
parent sets `PROMETHEUS_MULTIPROC_DIR` (a fresh directory) before any metric exists and the
child inherits it (`metrics_dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.write_side")

PARENT_ENV = "HYBRIDQ_STATUS_PARENT"
"""Set in the child's environment: the pid of the process whose death ends the child."""
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PREFIX = "hybridq-status-metrics-"
RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
PROJECTOR = (sys.executable, "-m", "services.status", "projector")
HEALTHY_SECONDS = 60.0
"""A child that ran this long before it exited starts the pauses from the first again."""
PR_SET_PDEATHSIG = 1


def metrics_dir() -> Path | None:
    """Give this process and its children one metrics directory (before any metric is made).

    An operator's own `PROMETHEUS_MULTIPROC_DIR` is used (its old files removed, as
    prometheus-client asks) and kept; otherwise a fresh temporary directory, returned to be
    removed at exit.
    """
    given = os.environ.get(METRICS_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        return None
    _remove_orphaned_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-"))
    os.environ[METRICS_ENV] = str(path)
    return path


def _remove_orphaned_dirs() -> None:
    """The directories of status services killed before they could remove their own."""
    for path in Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}*-*"):
        owner = path.name.removeprefix(METRICS_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: alive, someone else's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_metrics_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class WriteSide:
    """The child process running the write side, kept running while the service runs."""

    def __init__(self, drain_seconds: float, command: Sequence[str] = PROJECTOR) -> None:
        self.drain_seconds = drain_seconds
        self.command = list(command)
        self.process: asyncio.subprocess.Process | None = None
        self._started = 0.0
        self._stopping = False
        self._deadline: float | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.create_task(self._keep_running(), name="write-side")
        _RUNNING.append(self)

    def begin_stop(self) -> None:
        """No more restarts, SIGTERM to the child now, and the drain's deadline set from
        now (safe in a signal handler: flags, the clock, one kill)."""
        self._stopping = True
        if self._deadline is None:
            self._deadline = time.monotonic() + self.drain_seconds
        self._terminate()

    def _terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    async def _spawn(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.process = await asyncio.create_subprocess_exec(*self.command, env=env)
        self._started = time.monotonic()
        log.info("write side started", extra={"pid": self.process.pid})
        if self._stopping:  # the stop began while it was being started
            self._terminate()

    async def _keep_running(self) -> None:
        from shared.metrics import WRITE_SIDE_RESTARTS

        pauses = iter(RESTART_PAUSES)
        pause = RESTART_PAUSES[0]
        while not self._stopping:
            if self.process is not None:
                code = await self.process.wait()
                if self._stopping:
                    return
                _forget(self.process.pid)
                if time.monotonic() - self._started > HEALTHY_SECONDS:
                    pauses = iter(RESTART_PAUSES)
                pause = next(pauses, pause)
                log.error(
                    "write side exited with %s; starting it again in %.0f s",
                    code,
                    pause,
                    extra={"pid": self.process.pid},
                )
                self.process = None
                await asyncio.sleep(pause)
                if self._stopping:
                    return
                WRITE_SIDE_RESTARTS.inc()  # imported late: after metrics_dir() (see the top)
            try:
                await self._spawn()
            except OSError:  # no process to be had (fork refused): try again later
                pause = next(pauses, pause)
                log.exception("could not start the write side; trying again in %.0f s", pause)
                await asyncio.sleep(pause)

    async def stop(self) -> None:
        """No more restarts; SIGTERM, then wait for the drain until `drain_seconds` after
        the stop began (`begin_stop`, at the signal); past that the child is killed, so the
        service exits within its drain time whatever the child does."""
        if self in _RUNNING:
            _RUNNING.remove(self)
        self.begin_stop()
        await cancel_and_wait([self._watch])
        process = self.process
        if process is not None and process.returncode is None:
            assert self._deadline is not None
            try:
                await asyncio.wait_for(process.wait(), max(0.0, self._deadline - time.monotonic()))
            except TimeoutError:
                log.error("write side did not drain in time; killing it")
                process.kill()
                await process.wait()


_RUNNING: list[WriteSide] = []
"""The write side this process runs (one at most), for `begin_stop`."""


def begin_stop() -> None:
    """The service got SIGTERM/SIGINT: the write side starts draining at once, beside the
    HTTP server's own drain, not after it (uvicorn shuts the application down only once
    its connections are closed, which may take the whole drain time)."""
    for side in _RUNNING:
        side.begin_stop()


@asynccontextmanager
async def write_side(settings: StatusSettings) -> AsyncIterator[WriteSide]:
    side = WriteSide(settings.drain_seconds)
    await side.start()
    try:
        yield side
    finally:
        await side.stop()


def _forget(pid: int) -> None:
    """A dead child's live gauges leave /metrics (its counters stay: they are sums)."""
    if os.environ.get(METRICS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _die_with_parent() -> int | None:
    """Have the kernel kill this process when its parent dies (Linux); the parent's pid."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return int(parent)


async def _parent_gone(parent: int, stop: asyncio.Event) -> None:
    """Set `stop` once the parent is gone (re-parented: no event announces it, so look)."""
    while os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
            return  # stopping anyway
    log.warning("the status service's HTTP process is gone; draining")
    stop.set()


WriteSideMain = Callable[[StatusSettings, asyncio.Event], Awaitable[None]]


async def serve(settings: StatusSettings, main: WriteSideMain) -> None:
    """Run the write side (`main`, until its stop event is set) until SIGTERM/SIGINT or the
    parent's end, then drain."""
    from shared.service import ignore_late_signals

    parent = _die_with_parent()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_parent_gone(parent, stop)) if parent else None
    if parent is not None and os.getppid() != parent:
        stop.set()  # the parent died before the death signal was armed
    try:
        await main(settings, stop)
    finally:
        await cancel_and_wait([watch])
        ignore_late_signals()


def run(settings: StatusSettings, main: WriteSideMain) -> None:
    asyncio.run(serve(settings, main))
