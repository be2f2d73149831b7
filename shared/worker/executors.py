"""Executors run an attempt: on this worker (default), or on a remote batch API."""

from __future__ import annotations

import json
from typing import Any, Protocol

from shared.errors import (
    HandlerRaised,
    HandlerRaisedPermanently,
    PermanentJobError,
    UnknownJobType,
)
from shared.worker.child import Failed, RunRequest
from shared.worker.handlers import JobContext, Registration, Registry
from shared.worker.pool import ProcessPool
from shared.worker.results import checked_result


class Executor(Protocol):
    def knows(self, job_type: str) -> bool: ...

    def default_timeout(self, job_type: str) -> float: ...

    async def run(self, ctx: JobContext) -> dict[str, Any]: ...


class RegistryCatalogue:
    """What a site can run, and each job type's default timeout, from a handler registry."""

    registry: Registry

    def knows(self, job_type: str) -> bool:
        return self.registry.get(job_type) is not None

    def default_timeout(self, job_type: str) -> float:
        registration = self.registry.get(job_type)
        return registration.default_timeout if registration else 3600.0


class LocalExecutor(RegistryCatalogue):
    """Runs registered handlers on this worker: coroutines on the event loop, plain
    functions in the process pool. Either way the result is checked (JSON object,
    at most 64 KiB)."""

    def __init__(self, registry: Registry, pool: ProcessPool | None = None) -> None:
        self.registry = registry
        self.pool = pool

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        registration = self.registry.get(ctx.job_type)
        if registration is None:
            raise UnknownJobType(f"no handler for job type {ctx.job_type!r}")
        if registration.on_loop:
            return checked_result(await registration.handler(ctx))
        return await self._in_pool(ctx, registration)

    async def _in_pool(self, ctx: JobContext, registration: Registration) -> dict[str, Any]:
        if self.pool is None:
            raise RuntimeError("plain-function handlers need the worker's process pool")
        module, qualname = registration.reference
        request = RunRequest(
            module,
            qualname,
            str(ctx.job_id),
            ctx.job_type,
            ctx.params,
            ctx.attempt,
            ctx.data_classification,
        )

        async def on_progress(percent: float, message: str) -> None:
            pending = ctx.link.progress(percent, message)
            if pending is not None:
                await pending

        async def on_submit(request: dict[str, Any]) -> str | None:
            try:
                pending = ctx.link.submit(request)
            except PermanentJobError as exc:
                return str(exc)
            if pending is not None:
                await pending
            return None

        outcome = await self.pool.run(request, on_progress, on_submit)
        if isinstance(outcome, Failed):
            if outcome.permanent:
                raise HandlerRaisedPermanently(outcome.error)
            raise HandlerRaised(outcome.error)
        result: dict[str, Any] = json.loads(outcome.result_json)
        return result
