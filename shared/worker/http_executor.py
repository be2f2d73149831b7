"""An executor that runs attempts on a remote batch API (a public cloud's batch service).

Protocol (what the remote serves; `tests/fake_batch_api.py` is a reference):
  POST {url}/jobs  {"job_id", "job_type", "params", "attempt"} -> 201/202 {"id"}
  GET  {url}/jobs/{id} -> {"status": "running"|"succeeded"|"failed", "progress"?,
                           "result"?, "error"?, "permanent"?}
  DELETE {url}/jobs/{id}  (best effort, when the attempt is cancelled or times out)
Every request carries `Authorization: Bearer <EXECUTOR_TOKEN or EXECUTOR_TOKEN_FILE>`.
Polling backs off from EXECUTOR_POLL_SECONDS up to 5 s; the attempt's timeout bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from shared.errors import PermanentJobError
from shared.settings import WorkerSettings
from shared.worker.executors import RegistryCatalogue
from shared.worker.handlers import JobContext, Registry

MAX_POLL_SECONDS = 5.0


class RemoteJobFailed(Exception):
    """The remote batch service reports the attempt failed."""


class HttpExecutor(RegistryCatalogue):
    def __init__(
        self,
        url: str,
        token: str | None,
        registry: Registry,
        poll_seconds: float = 0.2,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.registry = registry
        self.poll_seconds = poll_seconds
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = client or httpx.AsyncClient(headers=headers, timeout=10)

    @classmethod
    def from_settings(cls, settings: WorkerSettings, registry: Registry) -> HttpExecutor:
        if not settings.executor_url:
            raise ValueError("EXECUTOR=http needs EXECUTOR_URL")
        token = settings.executor_token.get_secret_value() if settings.executor_token else None
        if settings.executor_token_file:
            token = settings.executor_token_file.read_text(encoding="utf-8").strip()
        return cls(settings.executor_url, token, registry, settings.executor_poll_seconds)

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        created = await self.client.post(
            f"{self.url}/jobs",
            json={
                "job_id": str(ctx.job_id),
                "job_type": ctx.job_type,
                "params": ctx.params,
                "attempt": ctx.attempt,
            },
        )
        if created.status_code in (400, 422):
            raise PermanentJobError(f"remote refused the job: {created.text[:500]}")
        created.raise_for_status()
        remote_id = str(created.json()["id"])
        try:
            return await self._poll(ctx, remote_id)
        except asyncio.CancelledError:
            with contextlib.suppress(httpx.HTTPError):
                await asyncio.shield(self.client.delete(f"{self.url}/jobs/{remote_id}"))
            raise

    async def _poll(self, ctx: JobContext, remote_id: str) -> dict[str, Any]:
        wait = self.poll_seconds
        last_progress: float | None = None
        while True:
            await asyncio.sleep(wait)
            response = await self.client.get(f"{self.url}/jobs/{remote_id}")
            response.raise_for_status()
            state = response.json()
            progress = state.get("progress")
            if isinstance(progress, int | float) and progress != last_progress:
                last_progress = float(progress)
                await ctx.progress(last_progress, "remote")
            if state.get("status") == "succeeded":
                result = state.get("result") or {}
                return result if isinstance(result, dict) else {"result": result}
            if state.get("status") == "failed":
                error = str(state.get("error") or "remote job failed")
                if state.get("permanent"):
                    raise PermanentJobError(error)
                raise RemoteJobFailed(error)
            wait = min(MAX_POLL_SECONDS, wait * 1.5)
