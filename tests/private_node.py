"""A throw-away RabbitMQ node of the test's own (its own name, ports, data directory and
config), for broker settings the machine's node must keep (e.g. `consumer_timeout`).

The node is started from the installed RabbitMQ (`/usr/lib/rabbitmq/bin/rabbitmq-server`),
without plugins, in its own session; `stop()` ends that process group only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PrivateNode:
    directory: Path
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self, timeout: float = 90) -> None:
        """Stop the node and start it again: same name, port, data and config (a broker
        restart as a client sees it: every connection closed, then refused, then back)."""
        self.stop()
        seen = _starts(self.directory)
        self.process = _spawn(self.directory, self.env)
        _wait_started(self, seen, timeout)


def start(directory: Path, config: str, advanced: str = "[].", timeout: float = 90) -> PrivateNode:
    """Start a node with `config` (rabbitmq.conf lines) and wait until it takes AMQP."""
    port = free_port()
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n{config}\n"
    )
    (directory / "advanced.config").write_text(advanced + "\n")
    (directory / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(directory),  # its own Erlang cookie
        "RABBITMQ_NODENAME": f"hqtest-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(directory / "pid"),
    }
    node = PrivateNode(directory, _spawn(directory, env), port, env)
    _wait_started(node, 0, timeout)
    return node


def _spawn(directory: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (directory / "server.log").open("ab")
    return subprocess.Popen(
        [str(SERVER)],
        env=env,
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


DONE = b"Starting broker... completed"


def _starts(directory: Path) -> int:
    """How many runs of the node have completed their start (the log is appended to)."""
    log = directory / "server.log"
    return log.read_bytes().count(DONE) if log.exists() else 0


def _wait_started(node: PrivateNode, seen: int, timeout: float) -> None:
    """Until one more run of the node than `seen` has logged its start."""
    log = node.directory / "server.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"the private RabbitMQ node exited; see {log}")
        if _starts(node.directory) > seen:
            return
        time.sleep(0.3)
    node.stop()
    raise TimeoutError(f"the private RabbitMQ node did not start in {timeout}s")
