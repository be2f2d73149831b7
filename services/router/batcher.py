"""Coalesce concurrent requests into one call, so a burst costs one round trip, not N."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class Batcher(Generic[K, R]):
    """Collects `submit(key)` calls for up to `window` seconds (or `max_size` keys) and
    answers them all from one `run(keys)` call.

    A key asked for twice in one batch is sent once; the first caller gets `run`'s answer
    and the others get `repeat` (for claims: "someone holds it", so a copy of a message
    arriving alongside the original can never be handed the claim too). An exception from
    `run` is raised to every caller of that batch.
    """

    def __init__(
        self,
        run: Callable[[list[K]], Awaitable[Mapping[K, R]]],
        *,
        repeat: R,
        window: float = 0.005,
        max_size: int = 200,
    ) -> None:
        self._run = run
        self._repeat = repeat
        self._window = window
        self._max_size = max_size
        self._pending: list[tuple[K, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((key, future))
        if len(self._pending) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: list[tuple[K, asyncio.Future[R]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            answers = await self._run(keys)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        answered: set[K] = set()
        for key, future in batch:
            if future.done():  # its caller was cancelled
                continue
            future.set_result(self._repeat if key in answered else answers[key])
            answered.add(key)
