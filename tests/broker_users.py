"""deploy/rabbitmq/definitions.json applied to a fresh vhost, every user's name suffixed
(as a deployment may name them: `hybridq-public-worker-prod`), for the tests that run
hybridq as those users."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from devtools import environment

ROOT = Path(__file__).resolve().parents[1]
SERVICE_USERS = {
    "router": "hybridq-router",
    "public_worker": "hybridq-public-worker",
    "private_worker": "hybridq-private-worker",
    "status": "hybridq-status",
}
OPERATOR = "hybridq-operator"


@contextmanager
def applied_definitions(secrets: Path, suffix: str) -> Iterator[str]:
    """A fresh vhost with the definitions applied (deploy/rabbitmq/apply.py), each user
    named with `suffix`; yields the vhost, then removes it and the users."""
    vhost = f"hybridq_test_defs_{uuid.uuid4().hex[:8]}"
    admin = secrets / "admin"
    admin.write_text("guest")  # the local test broker's admin; never a deploy default
    passwords = secrets / "users"
    passwords.mkdir()
    for user in [*SERVICE_USERS.values(), OPERATOR]:
        (passwords / user).write_text(f"pw-{user}")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy/rabbitmq/apply.py"),
            "--admin-user",
            "guest",
            "--admin-password-file",
            str(admin),
            "--vhost",
            vhost,
            "--passwords-dir",
            str(passwords),
            f"--user-suffix={suffix}",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield vhost
    finally:
        environment.delete_vhost(vhost)
        with httpx.Client(base_url=environment.MANAGEMENT, auth=environment.ADMIN) as http:
            for user in [*SERVICE_USERS.values(), OPERATOR]:
                http.delete(f"/api/users/{quote(user + suffix, safe='')}")


def url(vhost: str, suffix: str, user: str) -> str:
    """The AMQP URL of `user` (unsuffixed name) on `vhost`."""
    return f"amqp://{user}{suffix}:pw-{user}@127.0.0.1:5672/{quote(vhost, safe='')}"
