"""Local RabbitMQ/Postgres checks, and throw-away vhosts and databases for runs and tests."""

from __future__ import annotations

import socket
import subprocess
import sys
from urllib.parse import quote

import httpx

MANAGEMENT = "http://127.0.0.1:15672"
ADMIN = ("guest", "guest")
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

HOW_TO_START = {
    "rabbitmq": "start it with `rabbitmq-server -detached` (or `docker compose -f "
    "deploy/compose.yaml up rabbitmq`)",
    "postgres": "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
    "main start` (or `docker compose -f deploy/compose.yaml up postgres`)",
}


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def check_services() -> list[str]:
    """One line per service that cannot be reached, saying how to start it."""
    problems = []
    if not reachable(5672):
        problems.append(f"RabbitMQ is not reachable on 127.0.0.1:5672: {HOW_TO_START['rabbitmq']}")
    if not reachable(5432):
        problems.append(f"Postgres is not reachable on 127.0.0.1:5432: {HOW_TO_START['postgres']}")
    return problems


def preflight() -> bool:
    """Services reachable (else say how to start them, one line each), management on."""
    problems = check_services()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return False
    ensure_management()
    return True


def ensure_management() -> None:
    if not reachable(15672):
        subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_management"],
            check=True,
            capture_output=True,
        )


def create_vhost(
    name: str, user: str = "guest", management: str = MANAGEMENT, ports: tuple[int, ...] = (5672,)
) -> str:
    """Create a vhost with full permissions for `user`; returns its AMQP URL (one URL per
    node, comma-separated, when `ports` names the nodes of a cluster)."""
    with httpx.Client(base_url=management, auth=ADMIN, timeout=30) as http:
        http.put(f"/api/vhosts/{quote(name, safe='')}").raise_for_status()
        http.put(
            f"/api/permissions/{quote(name, safe='')}/{user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
    return ",".join(f"amqp://guest:guest@127.0.0.1:{p}/{quote(name, safe='')}" for p in ports)


def delete_vhost(name: str, management: str = MANAGEMENT) -> None:
    with httpx.Client(base_url=management, auth=ADMIN, timeout=30) as http:
        response = http.delete(f"/api/vhosts/{quote(name, safe='')}")
        if response.status_code not in (204, 404):
            response.raise_for_status()


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", PG_ADMIN_DSN, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


def create_database(name: str) -> str:
    """Create database `name` if it does not exist; returns its SQLAlchemy URL."""
    assert name.replace("_", "").isalnum(), name
    result = subprocess.run(
        ["psql", PG_ADMIN_DSN, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        check=True,
        capture_output=True,
        text=True,
    )
    if result.stdout.strip() != "1":
        _psql(f'CREATE DATABASE "{name}"')
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    assert name.startswith("hybridq_test_"), "only test databases are dropped"
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
