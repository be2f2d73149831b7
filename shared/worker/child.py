"""A pool process: runs plain-function handlers, one attempt at a time, for its worker.

Started by `shared.worker.pool` as `python -m shared.worker.child FD MODULE...` in a new
session (its own process group, so a kill reaches anything the handler started and a
terminal's Ctrl-C does not). It imports the handler modules once (warm), then serves
requests over the socket FD. Progress and child submissions are ordinary calls here: they
send a message to the worker, which publishes it (a submission waits for the confirm).
Kept light: it imports no broker or web library.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any, NamedTuple
from uuid import UUID

from shared.errors import PermanentError, PermanentJobError
from shared.worker.handlers import JobContext
from shared.worker.results import result_json

PR_SET_PDEATHSIG = 1


class RunRequest(NamedTuple):
    module: str
    qualname: str
    job_id: str
    job_type: str
    params: dict[str, Any]
    attempt: int
    data_classification: str


class Progress(NamedTuple):
    percent: float
    message: str


class Submit(NamedTuple):
    request: dict[str, Any]


class Submitted(NamedTuple):
    error: str | None


class Succeeded(NamedTuple):
    result_json: str


class Failed(NamedTuple):
    permanent: bool
    error: str


class PipeLink:
    """The context link of a pool process: messages to the worker over the socket."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def progress(self, percent: float, message: str) -> None:
        self.conn.send(Progress(percent, message))

    def submit(self, request: dict[str, Any]) -> None:
        self.conn.send(Submit(request))
        answer = self.conn.recv()
        if not isinstance(answer, Submitted):
            raise RuntimeError(f"unexpected answer from the worker: {answer!r}")
        if answer.error is not None:
            raise PermanentJobError(answer.error)


def resolve(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def run(request: RunRequest, conn: Connection) -> Succeeded | Failed:
    ctx = JobContext(
        job_id=UUID(request.job_id),
        job_type=request.job_type,
        params=request.params,
        attempt=request.attempt,
        link=PipeLink(conn),
        data_classification=request.data_classification,
    )
    try:
        handler = resolve(request.module, request.qualname)
        return Succeeded(result_json(handler(ctx)))
    except PermanentError as exc:
        return Failed(True, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        return Failed(False, f"{type(exc).__name__}: {exc}")


def _die_with_parent() -> None:
    """Linux: be killed when the worker dies, even in the middle of a handler."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def serve(fd: int, modules: list[str]) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    for module in modules:
        importlib.import_module(module)
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(run(request, conn))


if __name__ == "__main__":
    # run the imported module, not __main__: the messages' classes must be the ones the
    # worker pickles and unpickles (shared.worker.child.*)
    from shared.worker import child

    child.serve(int(sys.argv[1]), sys.argv[2:])
