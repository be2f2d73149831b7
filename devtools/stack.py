"""Start, stop and watch the four hybridq processes (`make run` and the end-to-end tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("router", "public_worker", "private_worker", "status")


@dataclass
class Stack:
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    per_service: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        host = self.env.get("STATUS_HTTP_HOST", "127.0.0.1")
        return f"http://{host}:{self.env.get('STATUS_HTTP_PORT', '8000')}"

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "services.status", "migrate"],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )

    def start(self, *names: str) -> None:
        """Start processes by name; `router#2` is a second replica of `router` (its own
        log file and `per_service` entry, on top of the service's)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names or SERVICES:
            service = name.split("#", 1)[0]
            log = (self.log_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                env={
                    **os.environ,
                    **self.env,
                    **self.per_service.get(service, {}),
                    **(self.per_service.get(name, {}) if name != service else {}),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.log_dir}")
            try:
                if httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200:
                    time.sleep(0.5)  # let the workers' consumers attach
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the status API at {self.api} was not ready in {timeout}s")

    def stop(self, *names: str, timeout: float = 30) -> dict[str, int | None]:
        """SIGTERM, then wait; returns each process's exit code (None: had to be killed)."""
        chosen = names or tuple(self.processes)
        for name in chosen:
            if (proc := self.processes.get(name)) and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name in chosen:
            proc = self.processes.pop(name, None)
            if proc is None:
                continue
            try:
                codes[name] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        return codes
