"""A small local HTTP server standing in for a public cloud's batch API (tests only)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException


@dataclass
class FakeBatchApi:
    token: str
    run_seconds: float = 0.3
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    seen_auth: list[str | None] = field(default_factory=list)

    def app(self) -> FastAPI:
        api = FastAPI()

        def check(authorization: str | None) -> None:
            self.seen_auth.append(authorization)
            if authorization != f"Bearer {self.token}":
                raise HTTPException(401, "bad token")

        @api.post("/jobs", status_code=202)
        def create(
            body: dict[str, Any], authorization: str | None = Header(None)
        ) -> dict[str, str]:
            check(authorization)
            if body["params"].get("reject"):
                raise HTTPException(422, "params rejected by the batch service")
            remote_id = uuid.uuid4().hex
            self.jobs[remote_id] = {**body, "created": time.monotonic()}
            return {"id": remote_id}

        @api.get("/jobs/{remote_id}")
        def state(remote_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
            check(authorization)
            job = self.jobs[remote_id]
            elapsed = time.monotonic() - job["created"]
            if elapsed < self.run_seconds:
                return {"status": "running", "progress": round(100 * elapsed / self.run_seconds)}
            if job["params"].get("fail"):
                return {
                    "status": "failed",
                    "error": "remote node lost",
                    "permanent": job["params"].get("permanent", False),
                }
            return {
                "status": "succeeded",
                "progress": 100,
                "result": {"ran_remotely": True, "job_type": job["job_type"]},
            }

        @api.delete("/jobs/{remote_id}", status_code=204)
        def delete(remote_id: str, authorization: str | None = Header(None)) -> None:
            check(authorization)
            self.deleted.append(remote_id)

        return api

    def serve(self, port: int) -> uvicorn.Server:
        server = uvicorn.Server(
            uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return server
