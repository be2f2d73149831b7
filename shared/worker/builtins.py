"""Built-in job types for demos and tests (contract section 6)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from shared.errors import PermanentJobError
from shared.worker.handlers import JobContext, Registry, registry

BUILTINS_MODULE = __name__


def _number(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PermanentJobError(f"params.{name} must be a non-negative number, got {value!r}")
    return float(value)


async def noop(ctx: JobContext) -> dict[str, Any]:
    return {}


async def sleep(ctx: JobContext) -> dict[str, Any]:
    seconds = _number(ctx.params, "seconds", 1.0)
    steps = max(1, min(20, int(seconds * 2)))
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await ctx.progress(100 * step / steps, f"slept {seconds * step / steps:.1f}s")
    return {"slept": seconds}


async def flaky(ctx: JobContext) -> dict[str, Any]:
    fail_times = int(_number(ctx.params, "fail_times", 1))
    if ctx.attempt <= fail_times:
        raise RuntimeError(f"flaky: failing attempt {ctx.attempt} of the first {fail_times}")
    return {"succeeded_on_attempt": ctx.attempt}


async def fail(ctx: JobContext) -> dict[str, Any]:
    raise RuntimeError(str(ctx.params.get("error", "failed on purpose")))


def transcode(ctx: JobContext) -> dict[str, Any]:
    """Real CPU work in steps (hashing), reporting progress. A plain function: it runs in
    a pool process, so it never stalls the worker's event loop."""
    work_ms = _number(ctx.params, "work_ms", 50)
    steps = 10
    digest = hashlib.sha256(str(ctx.job_id).encode())
    for step in range(1, steps + 1):
        deadline = time.process_time() + work_ms / 1000 / steps
        while time.process_time() < deadline:
            digest.update(digest.digest())
        ctx.progress(100 * step / steps, f"step {step}/{steps}")
    return {"digest": digest.hexdigest()[:16], "work_ms": work_ms}


def register_builtins(target: Registry = registry) -> Registry:
    target.handler("noop", default_timeout=60)(noop)
    # default timeouts under LEASE_AFTER_SECONDS: these attempts hold their delivery
    target.handler("sleep", default_timeout=1200)(sleep)
    target.handler("flaky", default_timeout=60)(flaky)
    target.handler("fail", default_timeout=60)(fail)
    target.handler("transcode", default_timeout=600)(transcode)
    target.handler("8k_transcode", default_timeout=1200)(transcode)
    return target
