"""The status service's metrics directory, shared by its HTTP process and its write side."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from services.status.entrypoints import write_side


def test_a_fresh_directory_is_made_and_those_of_dead_services_are_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(write_side.METRICS_ENV, "")  # restored (unset) after the test,
    monkeypatch.delenv(write_side.METRICS_ENV)  # whatever metrics_dir() sets
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = tmp_path / f"{write_side.METRICS_PREFIX}{dead.stdout.strip()}-abc"
    living = tmp_path / f"{write_side.METRICS_PREFIX}{os.getppid()}-def"
    for path in (orphan, living):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"x")

    made = write_side.metrics_dir()

    assert made is not None
    assert made.is_dir()
    assert made.name.startswith(f"{write_side.METRICS_PREFIX}{os.getpid()}-")
    assert os.environ[write_side.METRICS_ENV] == str(made)
    assert not orphan.exists()
    assert living.exists()
    write_side.remove_metrics_dir(made)
    assert not made.exists()


def test_an_operators_directory_is_emptied_of_old_files_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "counter_123.db").write_bytes(b"old")
    (chosen / "README").write_text("theirs")
    monkeypatch.setenv(write_side.METRICS_ENV, str(chosen))

    assert write_side.metrics_dir() is None  # nothing for us to remove at exit
    assert sorted(p.name for p in chosen.iterdir()) == ["README"]


SHORT_LIVED = (sys.executable, "-c", "import time; time.sleep(0.3)")
DEAF = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)


async def test_no_child_is_started_once_the_stop_has_begun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(write_side, "RESTART_PAUSES", (0.5,))
    spawned: list[int] = []
    side = write_side.WriteSide(drain_seconds=5, command=SHORT_LIVED)
    real_spawn = side._spawn

    async def counting_spawn() -> None:
        await real_spawn()
        assert side.process is not None
        spawned.append(side.process.pid)

    monkeypatch.setattr(side, "_spawn", counting_spawn)
    await side.start()
    await asyncio.sleep(0.6)  # the first child has exited; the restart pause is running
    side.begin_stop()  # what the service's signal handler does
    await asyncio.sleep(1.0)  # past the pause
    await side.stop()
    assert len(spawned) == 1, f"started after the stop began: {spawned[1:]}"


async def test_a_child_that_ignores_sigterm_is_killed_at_the_drain_deadline(
    tmp_path: Path,
) -> None:
    deaf = tmp_path / "deaf"
    side = write_side.WriteSide(drain_seconds=1.0, command=(sys.executable, "-c", DEAF, str(deaf)))
    await side.start()
    for _ in range(100):  # until it has installed its SIG_IGN
        if deaf.exists():
            break
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await side.stop()
    assert side.process is not None
    assert side.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 3
