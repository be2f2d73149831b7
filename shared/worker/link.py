"""How a running attempt's progress and child jobs reach the bus from the event loop.

Progress reports are published in the order they were made (each waits for the one
before); a child submission is checked at once (a bad one raises in the handler) and
published to `jobs.intake`. The runner waits for every submission to be confirmed before
it reports the attempt succeeded, so a child a handler submitted is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from shared.bus import Bus
from shared.contracts.events import JobProgress
from shared.contracts.jobs import PlacedJob
from shared.worker.children import child_job

log = logging.getLogger("hybridq.worker")


class LoopLink:
    def __init__(self, bus: Bus, job: PlacedJob) -> None:
        self.bus = bus
        self.job = job
        self._progress: asyncio.Task[None] | None = None
        self._submissions: list[asyncio.Task[None]] = []

    def progress(self, percent: float, message: str) -> asyncio.Task[None]:
        event = JobProgress(
            job_id=self.job.job_id, attempt=self.job.attempt, percent=percent, message=message
        )
        previous = self._progress

        async def publish() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await self.bus.event(event)

        self._progress = asyncio.create_task(publish())
        return self._progress

    def submit(self, request: dict[str, Any]) -> asyncio.Task[None]:
        child = child_job(request, self.job.data_classification)
        task = asyncio.create_task(self.bus.submit(child.model_dump_json().encode()))
        self._submissions.append(task)
        log.info(
            "child job submitted",
            extra={"job_id": str(self.job.job_id), "child_id": str(child.job_id)},
        )
        return task

    async def settled(self) -> None:
        """Wait for every submission (raising if one failed) and the last progress report."""
        if self._submissions:
            await asyncio.gather(*self._submissions)
        if self._progress is not None:
            try:
                await self._progress
            except Exception:
                log.warning("a progress report was not published", exc_info=True)
