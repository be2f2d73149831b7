"""Private RabbitMQ nodes and Postgres instances that a fault test may stop, restart and
fill up: never the machine's own node or server, which other work depends on.

Both run as their service users (rabbitmq, postgres) from a temporary folder of their own,
on ports picked free, and are removed at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devtools.stack import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as(user: str, command: str, *, timeout: float = 120, check: bool = True) -> str:
    """Run a shell command as `user` (the fixture runs as root), keeping our environment."""
    done = subprocess.run(
        ["su", user, "-s", "/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{command!r} as {user}: {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def _owned_by(user: str, base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    shutil.chown(base, user, user)


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node named hybridq-faults-<rand>@localhost, with its own ports and files."""

    base: Path
    keep_logs: Path | None = None  # the node's log is copied here at teardown
    node: str = ""
    amqp_port: int = 0
    management_port: int = 0

    def start(self) -> PrivateRabbitMQ:
        self.node = f"hybridq-faults-{uuid.uuid4().hex[:8]}@localhost"
        self.amqp_port, self.management_port, dist_port = free_port(), free_port(), free_port()
        _owned_by("rabbitmq", self.base)
        for sub in ("mnesia", "log"):
            _owned_by("rabbitmq", self.base / sub)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "loopback_users.guest = true\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")  # no management: starts faster
        (self.base / "rabbitmq-env.conf").write_text("")  # not the machine's env file
        self._env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        exports = " ".join(f"{k}={v}" for k, v in self._env.items())
        _as(
            "rabbitmq",
            f"cd {self.base} && env {exports} /usr/lib/rabbitmq/bin/rabbitmq-server -detached",
        )
        deadline = time.monotonic() + 60
        while self.ctl("ping", check=False) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node} did not answer ping; logs in {self.base / 'log'}")
            time.sleep(1)
        self.ctl("await_startup", timeout=120)
        return self

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> str | None:
        """`rabbitmqctl -n NODE ...` (as rabbitmq, for the cookie); None when it failed
        and `check` is off."""
        command = " ".join(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *args])
        try:
            return _as(
                "rabbitmq",
                f"cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq {command}",
                timeout=timeout,
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            if check:
                raise
            return None

    def stop(self) -> None:
        if self.node:
            self.ctl("stop", check=False)
        if self.keep_logs is not None:
            shutil.copytree(self.base / "log", self.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class PrivatePostgres:
    """A Postgres 15 instance initdb'd into a temp folder, on its own port and socket dir."""

    base: Path
    keep_logs: Path | None = None  # the server's log is copied here at teardown
    port: int = 0

    def start(self, options: str = "") -> PrivatePostgres:
        """initdb and start; `options`: more server settings (`-c name=value ...`)."""
        self.port = free_port()
        _owned_by("postgres", self.base)
        _as("postgres", f"{PG_BIN}/initdb -D {self.base}/data -A trust -U postgres -E UTF8")
        self.pg_ctl("start -w", options=options)
        return self

    def pg_ctl(self, action: str, *, check: bool = True, options: str = "") -> str:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off {options}"
        )
        return _as(
            "postgres",
            f"{PG_BIN}/pg_ctl -D {self.base}/data -l {self.base}/server.log "
            f"-o '{options}' {action}",
            check=check,
        )

    def starting_up(self, on: bool) -> None:
        """Hold the server in the state where it answers every connection with SQLSTATE
        57P03 (`the database system is not yet accepting connections`, the class of
        `starting up`): a standby that may not serve reads. `False` puts it back."""
        signal = self.base / "data" / "standby.signal"
        self.pg_ctl("stop -m fast")
        if on:
            _as("postgres", f"touch {signal}")
            self.pg_ctl("start -W", options="-c hot_standby=off")
        else:
            signal.unlink(missing_ok=True)
            self.pg_ctl("start -w")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        subprocess.run(
            ["psql", self.admin_dsn, "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.port:
            self.pg_ctl("stop -m immediate", check=False)
        if self.keep_logs is not None and (self.base / "server.log").exists():
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.base / "server.log", self.keep_logs)
        shutil.rmtree(self.base, ignore_errors=True)
