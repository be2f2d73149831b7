"""The command line's argument handling and error lines (no API needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybridq_cli import global_options_last
from hybridq_cli.app import error_line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api", "http://x", "list"], ["list", "--api", "http://x"]),
        (["--api=http://x", "--json", "dlq", "list"], ["dlq", "list", "--api=http://x", "--json"]),
        (["--token", "t", "get", "id"], ["get", "id", "--token", "t"]),
        (["list", "--api", "http://x"], ["list", "--api", "http://x"]),
        (["--api", "http://x"], ["--api", "http://x"]),
        (["--json", "submit", "noop", "--", "-x"], ["submit", "noop", "--json", "--", "-x"]),
    ],
)
def test_global_options_work_before_the_subcommand(argv: list[str], expected: list[str]) -> None:
    assert global_options_last(argv) == expected


def test_a_422_is_printed_once() -> None:
    message = "residency: confidential data never leaves the private cloud"
    line = error_line(message, [{"field": "target_cloud", "message": message}])
    assert line == f"target_cloud: {message}"
    assert line.count(message) == 1
    two = [{"field": "a", "message": "m1"}, {"field": "b", "message": "m2"}]
    assert error_line("2 fields are invalid", two) == "a: m1; b: m2"
    assert error_line("no job x", []) == "no job x"


def _hybridq(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from hybridq_cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_an_unreachable_api_is_one_line_and_non_zero_with_api_first() -> None:
    done = _hybridq("--api", "http://127.0.0.1:9", "list")
    assert done.returncode != 0
    assert "No such option" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("hybridq: cannot reach the API at http://127.0.0.1:9")


def test_flags_show_no_type_in_help() -> None:
    done = _hybridq("submit", "--help")
    assert done.returncode == 0
    flags = [line for line in done.stdout.splitlines() if "--watch" in line or "--json" in line]
    assert len(flags) == 2
    assert not any("<bool>" in line for line in flags)
