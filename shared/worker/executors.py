"""Executors run an attempt: in this process (default), or on a remote batch API."""

from __future__ import annotations

from typing import Any, Protocol

from shared.errors import UnknownJobType
from shared.worker.handlers import JobContext, Registry


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


class InProcessExecutor(RegistryCatalogue):
    """Runs the registered handler in this worker's event loop."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        registration = self.registry.get(ctx.job_type)
        if registration is None:
            raise UnknownJobType(f"no handler for job type {ctx.job_type!r}")
        return await registration.handler(ctx)
