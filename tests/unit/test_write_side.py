"""The status service's metrics directory, shared by its HTTP process and its write side."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from services.status import write_side


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
