"""Thumbnail job types: a plain function (CPU work, run in the worker's process pool) and a
coroutine (runs on the worker's event loop) that fans out child jobs.

    HYBRIDQ_HANDLERS=examples.thumbnails.handlers
    ROUTING_RULES=examples/thumbnails/rules.toml

    hybridq submit thumbnail_batch --param 'sizes=[64, 128, 256]' --watch
    hybridq get <job_id>          # lists the children it submitted
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.errors import PermanentJobError
from shared.worker.handlers import JobContext, registry

MAX_SIZE = 4096


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise PermanentJobError(f"size must be an integer from 1 to {MAX_SIZE}, got {value!r}")
    return value


@registry.handler("thumbnail", default_timeout=120)
def thumbnail(ctx: JobContext) -> dict[str, Any]:
    """Render a size x size thumbnail (here: hash every row of synthetic pixels).

    A plain function: blocking, CPU-bound code is fine, it runs in a pool process; a
    timeout or a cancel kills that process. `ctx.progress` is an ordinary call here.
    """
    size = _size(ctx.params.get("size", 64))
    digest = hashlib.sha256(str(ctx.params.get("source", "demo")).encode())
    for row in range(size):
        for _ in range(size):
            digest.update(row.to_bytes(4, "big"))
        if row % max(1, size // 4) == 0:
            ctx.progress(100 * row / size, f"row {row}/{size}")
    return {"size": size, "checksum": digest.hexdigest()[:16]}


@registry.handler("thumbnail_batch", default_timeout=60)
async def thumbnail_batch(ctx: JobContext) -> dict[str, Any]:
    """Submit one `thumbnail` child job per size and return their job ids.

    A coroutine: it runs on the worker's event loop, so it must not block; `await` the
    context calls. Each child's view has `parent_id` = this job; `GET
    /jobs?parent_id=<this job>` lists them.
    """
    sizes = ctx.params.get("sizes", [64, 128])
    if not isinstance(sizes, list) or not sizes:
        raise PermanentJobError("sizes must be a non-empty list")
    children = []
    for n, size in enumerate(sizes, start=1):
        child = await ctx.submit("thumbnail", params={"size": _size(size)})
        children.append(str(child))
        await ctx.progress(100 * n / len(sizes), f"submitted {n}/{len(sizes)}")
    return {"children": children}
