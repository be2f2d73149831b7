"""What the bench measures around a run: CPU and peak RSS per process, busy time of the machine.

A sampler thread walks each watched process group (a process and its children, or every
process of a shared server) every `interval` seconds, so processes that start or end during
the run are counted from the first to the last time they were seen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

Finder = Callable[[], Iterable[psutil.Process]]


def tree(pid: int) -> Finder:
    """The process `pid` and all its descendants (worker pools, prefork children)."""

    def find() -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    return find


def single(pid: int) -> Finder:
    """The process `pid` alone (the bench itself: its children are measured apart)."""

    def find() -> list[psutil.Process]:
        try:
            return [psutil.Process(pid)]
        except psutil.NoSuchProcess:
            return []

    return find


def named(*names: str) -> Finder:
    """Every process with one of these names (a shared server: RabbitMQ, Postgres)."""

    def find() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]

    return find


def machine_busy_ms() -> float:
    """Busy CPU time of the whole machine since boot (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class _Seen:
    first: float
    last: float
    rss: int


@dataclass
class Watch:
    """Samples the groups until stopped; `.cpu_ms()` and `.peak_rss_mb()` per group."""

    groups: dict[str, Finder]
    interval: float = 0.2
    _seen: dict[str, dict[int, _Seen]] = field(default_factory=dict)
    _peak: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _busy: tuple[float, float] = (0.0, 0.0)
    _started: float = float("inf")
    _stopped: float = 0.0
    background: dict[str, float] = field(default_factory=dict)

    def baseline(self, seconds: float = 4.0) -> None:
        """Before the run: the busy rate (ms per s) of the machine and of each group while
        the system under test idles, i.e. what others on this shared machine spend; the
        report subtracts it from the shared server and whole-machine figures."""
        before = {n: self._group_cpu(f) for n, f in self.groups.items()}
        busy, t0 = machine_busy_ms(), time.monotonic()
        time.sleep(seconds)
        took = time.monotonic() - t0
        self.background = {  # a process that ended meanwhile can make a difference < 0
            n: max(0.0, self._group_cpu(f) - before[n]) / took for n, f in self.groups.items()
        }
        self.background["machine"] = max(0.0, machine_busy_ms() - busy) / took

    @staticmethod
    def _group_cpu(find: Finder) -> float:
        total = 0.0
        for proc in find():
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += (t.user + t.system) * 1000
        return total

    def seconds(self) -> float:
        return self._stopped - self._started

    def start(self) -> None:
        self._started = time.time()
        self._sample()
        self._busy = (machine_busy_ms(), 0.0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        self._busy = (self._busy[0], machine_busy_ms())
        self._stopped = time.time()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, find in self.groups.items():
            seen = self._seen.setdefault(name, {})
            peak = 0.0
            for proc in find():
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        cpu = (t.user + t.system) * 1000
                        rss = proc.memory_info().rss
                        born = proc.create_time()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                # a process started during the run (a new connection's backend, a pool
                # child) counts from zero, not from when the sampler first saw it
                first = 0.0 if born >= self._started else cpu
                entry = seen.setdefault(proc.pid, _Seen(first, cpu, rss))
                entry.last, entry.rss = cpu, max(entry.rss, rss)
                peak = max(peak, rss / 2**20)
            self._peak[name] = max(self._peak.get(name, 0.0), peak)

    def cpu_ms(self) -> dict[str, float]:
        return {n: sum(s.last - s.first for s in seen.values()) for n, seen in self._seen.items()}

    def peak_rss_mb(self) -> dict[str, float]:
        """The largest RSS of any single process of each group."""
        return dict(self._peak)

    def machine_ms(self) -> float:
        return self._busy[1] - self._busy[0]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def now() -> float:
    return time.time()
