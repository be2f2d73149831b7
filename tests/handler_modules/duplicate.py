"""A handler module that takes a job type the built-ins already have (refused at start)."""

from __future__ import annotations

from typing import Any

from shared.worker.handlers import JobContext, registry


@registry.handler("noop")
async def my_noop(ctx: JobContext) -> dict[str, Any]:
    return {}
