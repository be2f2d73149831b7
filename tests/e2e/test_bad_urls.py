"""A broker or database URL a service cannot use gives one line and exit status 3, from
every service (shared/startup.py): the line names the setting and the cause, never the
password, and no traceback comes with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shared.startup import EXIT_UNUSABLE_SETTING
from tests.conftest import free_port

pytestmark = pytest.mark.connected

SECRET = "s3cret-pw"
BAD = {
    "AMQP_URL": {
        "malformed": "not a url",
        "unreachable": f"amqp://guest:{SECRET}@127.0.0.1:{free_port()}/",
    },
    "DATABASE_URL": {
        "malformed": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/x",  # no async driver
        "unreachable": f"postgresql+asyncpg://postgres:{SECRET}@127.0.0.1:{free_port()}/x",
    },
}
COMMANDS = {
    "router": (["services.router"], ["AMQP_URL", "DATABASE_URL"]),
    "public_worker": (["services.public_worker"], ["AMQP_URL"]),
    "private_worker": (["services.private_worker"], ["AMQP_URL"]),
    "status": (["services.status"], ["AMQP_URL", "DATABASE_URL"]),
    "status migrate": (["services.status", "migrate"], ["DATABASE_URL"]),
}
CASES = [
    (command, setting, kind)
    for command, (_, settings) in COMMANDS.items()
    for setting in settings
    for kind in BAD[setting]
]


@pytest.mark.parametrize(("command", "setting", "kind"), CASES)
def test_a_setting_that_cannot_be_used_gives_one_line_and_exit_3(
    amqp_url: str, database_url: str, command: str, setting: str, kind: str
) -> None:
    args, _ = COMMANDS[command]
    env = {
        **os.environ,
        "AMQP_URL": amqp_url,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        setting: BAD[setting][kind],  # the one setting that cannot be used
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, timeout=60, check=False
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == EXIT_UNUSABLE_SETTING, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    line = json.loads(lines[0])
    assert line["level"] == "critical"
    assert line["msg"].startswith(f"{setting} ("), line
    assert "cannot be used: " in line["msg"]
    assert SECRET not in output
    assert "Traceback" not in output
    assert time.monotonic() - began < 30
