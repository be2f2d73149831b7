"""Job handlers: the pluggable part. A site runs the job types registered here.

A module listed in HYBRIDQ_HANDLERS registers its job types on the module-level
`registry` when the worker imports it::

    from shared.worker.handlers import JobContext, registry

    @registry.handler("thumbnail", default_timeout=120)
    def thumbnail(ctx: JobContext) -> dict[str, object]:   # runs in a pool process
        ctx.progress(50, "half way")
        return {"ok": True}

    @registry.handler("notify")
    async def notify(ctx: JobContext) -> dict[str, object]:  # runs on the event loop
        child = await ctx.submit("noop", params={})
        return {"child": str(child)}

and list the job type under the site in the rules file. A plain function runs in a
process of the worker's pool (so blocking or CPU-bound code never stalls the worker, and a
timeout or cancel kills it); it must be a module-level function, since the pool process
finds it by module and name. A coroutine runs on the worker's event loop.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

Result = dict[str, Any]


class Sent:
    """What `ctx.progress(...)` returns. The report is already on its way; a coroutine
    handler may `await` it to wait until it is published (a plain function ignores it)."""

    __slots__ = ("_pending",)

    def __init__(self, pending: Awaitable[None] | None = None) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        if self._pending is not None:
            yield from _awaitable(self._pending).__await__()


class ChildJob(UUID):
    """What `ctx.submit(...)` returns: the child's job_id at once. A coroutine handler
    awaits it (`await ctx.submit(...)`) to wait until the submission is confirmed; in a
    plain function the call returns after the confirmation, so it is simply the id."""

    __slots__ = ("_pending",)
    _pending: Awaitable[None] | None

    def __init__(self, job_id: UUID, pending: Awaitable[None] | None = None) -> None:
        super().__init__(int=job_id.int)
        object.__setattr__(self, "_pending", pending)

    def __await__(self) -> Generator[Any, None, UUID]:
        if self._pending is not None:
            yield from _awaitable(self._pending).__await__()
        return UUID(int=self.int)


async def _awaitable(pending: Awaitable[None]) -> None:
    await pending


class ContextLink(Protocol):
    """How a context's reports leave the handler: published from the event loop, or sent
    over the pipe of a pool process to the worker, which publishes them."""

    def progress(self, percent: float, message: str) -> Awaitable[None] | None: ...

    def submit(self, request: dict[str, Any]) -> Awaitable[None] | None: ...


def child_job_id(parent: UUID, attempt: int, index: int) -> UUID:
    """The `index`-th child submitted by `attempt` of `parent`. Deterministic, so the same
    attempt run again (handed back on shutdown, or its submission retried) submits the
    same job_ids and the router drops the copies as duplicates; a new attempt (after a
    failure) submits new children."""
    return uuid5(NAMESPACE_URL, f"hybridq:child:{parent}:{attempt}:{index}")


@dataclass(frozen=True, eq=False)
class JobContext:
    """What a handler gets: the job's input, and calls to report progress and to
    submit child jobs. The same class serves plain functions and coroutines (see `Sent`
    and `ChildJob`)."""

    job_id: UUID
    job_type: str
    params: dict[str, Any]
    attempt: int
    link: ContextLink
    data_classification: str = "internal"
    _children: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def progress(self, percent: float, message: str = "") -> Sent:
        pending = self.link.progress(round(max(0.0, min(100.0, percent)), 2), message)
        return Sent(pending)

    def submit(
        self, job_type: str, *, params: dict[str, Any] | None = None, **fields: Any
    ) -> ChildJob:
        """Submit a child job (any JobSubmitted field may be given); its view has
        `parent_id`. It inherits this job's data classification unless one is given."""
        index = next(self._children)
        job_id = UUID(
            str(fields.pop("job_id", None) or child_job_id(self.job_id, self.attempt, index))
        )
        request = {
            "data_classification": self.data_classification,
            **fields,
            "job_id": str(job_id),
            "job_type": job_type,
            "params": params or {},
            "parent_id": str(self.job_id),
        }
        return ChildJob(job_id, self.link.submit(request))


SyncHandler = Callable[[JobContext], Result]
AsyncHandler = Callable[[JobContext], Awaitable[Result]]
H = TypeVar("H", bound=Callable[[JobContext], Any])


class HandlerError(Exception):
    """A handler cannot be registered as written (raised when its module is imported):
    a plain function not importable by name, or a job type another handler has."""


@dataclass(frozen=True)
class Registration:
    handler: Callable[[JobContext], Any]
    default_timeout: float

    @property
    def on_loop(self) -> bool:
        """Coroutines run on the worker's event loop; plain functions in the pool."""
        return inspect.iscoroutinefunction(self.handler)

    @property
    def reference(self) -> tuple[str, str]:
        """Module and qualified name, by which a pool process finds a plain function."""
        return self.handler.__module__, self.handler.__qualname__


@dataclass
class Registry:
    handlers: dict[str, Registration] = field(default_factory=dict)

    def handler(self, job_type: str, *, default_timeout: float = 3600.0) -> Callable[[H], H]:
        def register(fn: H) -> H:
            registration = Registration(fn, default_timeout)
            if not registration.on_loop and "<locals>" in fn.__qualname__:
                raise HandlerError(
                    f"{fn.__qualname__}: a plain-function handler must be defined at module "
                    "level (it runs in a pool process, which imports it by name)"
                )
            known = self.handlers.get(job_type)
            if known is not None and known.reference != registration.reference:
                raise HandlerError(
                    f"job type {job_type!r} is registered twice: by "
                    f"{'.'.join(known.reference)} and by {'.'.join(registration.reference)}; "
                    "give one of them another job type"
                )
            self.handlers[job_type] = registration
            return fn

        return register

    def get(self, job_type: str) -> Registration | None:
        return self.handlers.get(job_type)

    def job_types(self) -> frozenset[str]:
        return frozenset(self.handlers)


registry = Registry()
