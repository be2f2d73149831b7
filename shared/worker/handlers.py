"""Job handlers: the pluggable part. A site runs the job types registered here.

Register your own with the decorator::

    from shared.worker.handlers import JobContext, registry

    @registry.handler("thumbnail", default_timeout=120)
    async def thumbnail(ctx: JobContext) -> dict[str, object]:
        await ctx.progress(50, "half way")
        return {"ok": True}

and list the job type under the site in the rules file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

ProgressReporter = Callable[[float, str], Awaitable[None]]


@dataclass(frozen=True)
class JobContext:
    job_id: UUID
    job_type: str
    params: dict[str, Any]
    attempt: int
    report: ProgressReporter

    async def progress(self, percent: float, message: str = "") -> None:
        await self.report(round(max(0.0, min(100.0, percent)), 2), message)


Handler = Callable[[JobContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    default_timeout: float


@dataclass
class Registry:
    handlers: dict[str, Registration] = field(default_factory=dict)

    def handler(
        self, job_type: str, *, default_timeout: float = 3600.0
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers[job_type] = Registration(fn, default_timeout)
            return fn

        return register

    def get(self, job_type: str) -> Registration | None:
        return self.handlers.get(job_type)

    def job_types(self) -> frozenset[str]:
        return frozenset(self.handlers)


registry = Registry()
