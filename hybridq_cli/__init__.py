"""`hybridq`: the command line for people at a terminal; it talks to the HTTP API."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hybridq_cli import bulk, dlq, jobs, link, schedules, workers  # noqa: F401
from hybridq_cli.app import app

GLOBAL_VALUED = ("--api", "--token")
GLOBAL_FLAGS = ("--json",)


def global_options_last(argv: Sequence[str]) -> list[str]:
    """`hybridq --api URL list` as `hybridq list --api URL`: the global options (`--api`,
    `--token`, `--json`) given before the subcommand move after it, where every command
    reads them (contract §7: before or after the subcommand)."""
    moved: list[str] = []
    rest = list(argv)
    while rest:
        head = rest[0]
        name = head.split("=", 1)[0]
        if name in GLOBAL_VALUED:
            take = 1 if "=" in head else 2
            moved += rest[:take]
            rest = rest[take:]
        elif head in GLOBAL_FLAGS:
            moved.append(head)
            rest = rest[1:]
        else:
            break
    if not moved or not rest:
        return list(argv)
    if "--" in rest:  # options stay before the end of options
        at = rest.index("--")
        return [*rest[:at], *moved, *rest[at:]]
    return [*rest, *moved]


def main() -> None:
    try:
        app(args=global_options_last(sys.argv[1:]), prog_name="hybridq")
    except KeyboardInterrupt:
        sys.exit(130)
