"""Start, stop, kill and watch the hybridq processes (`make run`, the e2e and fault tests).

A service runs as one process named after it (`stack.start("router")` -> `router`), or as
replicas (`stack.start("router", replicas=2)` -> `router#1`, `router#2`), each as if on its
own machine: its own empty local folder (`ROUTER_STATE_DIR`, which no v1.1 service reads
any more: nothing rests on a local disk), worker name and, for the status
service, HTTP port. `kill` is `kill -9`; `replace` starts a fresh process under the same
name with an empty local disk, so a test can show that no guarantee rests on one
process's memory or disk.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("router", "public_worker", "private_worker", "status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_of(name: str) -> str:
    """`router#2` -> `router`; a plain service name is its own service."""
    return name.split("#", 1)[0]


@dataclass
class Stack:
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    per_service: dict[str, dict[str, str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    logs: dict[str, list[Path]] = field(default_factory=dict)
    _disks: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def api(self) -> str:
        """The first status process's API (the only one without replicas)."""
        return self.apis[0] if self.apis else self._url(self._port("status"))

    @property
    def apis(self) -> list[str]:
        names = sorted(n for n in self.processes if service_of(n) == "status")
        return [self._url(self._port(n)) for n in names]

    def _url(self, port: int) -> str:
        return f"http://{self.env.get('STATUS_HTTP_HOST', '127.0.0.1')}:{port}"

    def _port(self, name: str) -> int:
        if name in ("status", "status#1") or "#" not in name:
            return int(self.env.get("STATUS_HTTP_PORT", "8000"))
        return self.ports.setdefault(name, free_port())

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "services.status", "migrate"],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )

    def start(self, *names: str, replicas: int | None = None) -> None:
        """Start each named process (default: the four services) once -- `router#2` is a
        replica of `router` -- or each named service as `replicas` replicas."""
        for service in names or SERVICES:
            if replicas is None:
                self._spawn(service)
            else:
                for i in range(1, replicas + 1):
                    self._spawn(f"{service}#{i}")

    def replace(self, name: str) -> None:
        """Start a fresh process under `name` (after `kill`), with an empty local disk."""
        if (proc := self.processes.get(name)) is not None and proc.poll() is None:
            raise RuntimeError(f"{name} is still running; kill or stop it first")
        self._spawn(name, fresh_disk=True)

    def restart(self, name: str) -> None:
        """SIGTERM (drain), then start the same process again: a rolling restart."""
        self.stop(name)
        self._spawn(name, new_log=True)

    def _spawn(self, name: str, *, fresh_disk: bool = False, new_log: bool = False) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = service_of(name)
        env = {**os.environ, **self.env, **self.per_service.get(service, {})}
        if "#" in name or fresh_disk:
            env.update(self._own_machine(name))
        if name != service:  # a replica's own entry, on top of its service's
            env.update(self.per_service.get(name, {}))
        incarnations = self.logs.setdefault(name, [])
        if fresh_disk or new_log or not incarnations:  # `start` again appends to the log
            suffix = f".{len(incarnations) + 1}" if incarnations else ""
            incarnations.append(self.log_dir / f"{name}{suffix}.log")
        log = incarnations[-1].open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _own_machine(self, name: str) -> dict[str, str]:
        """What differs between replicas on separate machines: disk, name, port."""
        disk = self.log_dir / "disks" / f"{name.replace('#', '-')}.{next(self._disks)}"
        env = {"ROUTER_STATE_DIR": str(disk), "WORKER_NAME": name}
        if service_of(name) == "status":
            env["STATUS_HTTP_PORT"] = str(self._port(name))
        return env

    def log_path(self, name: str) -> Path:
        """The current process's log: after `replace` or `restart`, `<name>.<n>.log` (a
        process started again with `start` appends to its predecessor's)."""
        return self.logs[name][-1]

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def kill(self, name: str) -> None:
        """`kill -9`: no drain, no goodbye; whatever it held is the broker's to redeliver."""
        proc = self.processes[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def wait_ready(self, timeout: float = 30) -> None:
        """Every status process answers /readyz (and no process has exited)."""
        deadline = time.monotonic() + timeout
        waiting = list(self.apis or [self.api])
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.log_dir}")
            waiting = [api for api in waiting if not _ready(api)]
            if not waiting:
                time.sleep(0.5)  # let the workers' consumers attach
                return
            time.sleep(0.2)
        raise TimeoutError(f"the status API at {waiting} was not ready in {timeout}s")

    def stop(self, *names: str, timeout: float = 30) -> dict[str, int | None]:
        """SIGTERM, then wait; returns each process's exit code (None: had to be killed).

        A process that was killed before (`kill`) reports its -9 here, unless replaced.
        """
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


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
