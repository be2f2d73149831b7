"""`hybridq`: the command line for people at a terminal; it talks to the HTTP API."""

from __future__ import annotations

import sys

from hybridq_cli import bulk, dlq, jobs, link, schedules, workers  # noqa: F401
from hybridq_cli.app import app


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
