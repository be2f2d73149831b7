"""Test job types: CPU-bound, oversized results, child jobs (plain and coroutine)."""

from __future__ import annotations

import os
import time
from typing import Any

from shared.worker.handlers import JobContext, registry


@registry.handler("busy", default_timeout=60)
def busy(ctx: JobContext) -> dict[str, Any]:
    """Spin the CPU without ever yielding; says its pid first (tests check it is killed)."""
    ctx.progress(1, f"pid {os.getpid()}")
    deadline = time.monotonic() + float(ctx.params.get("seconds", 3600))
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return {"spins": n}


@registry.handler("sized_result", default_timeout=30)
def sized_result(ctx: JobContext) -> dict[str, Any]:
    """A result of about params.bytes bytes of JSON."""
    return {"data": "x" * (int(ctx.params["bytes"]) - len('{"data":""}'))}


@registry.handler("fan_out", default_timeout=30)
async def fan_out(ctx: JobContext) -> dict[str, Any]:
    children = [str(await ctx.submit("noop")) for _ in range(int(ctx.params.get("n", 2)))]
    await ctx.progress(100, "submitted")
    return {"children": children}


@registry.handler("fan_out_plain", default_timeout=30)
def fan_out_plain(ctx: JobContext) -> dict[str, Any]:
    children = [
        str(ctx.submit("noop", params={"i": i})) for i in range(int(ctx.params.get("n", 2)))
    ]
    ctx.progress(100, "submitted")
    return {"children": children}
