"""`make bench`: hybridq, Celery, Dramatiq and the bare broker hop, side by side in one run.

`python -m bench.compare [--jobs N] [--only hybridq,celery,dramatiq,hop] [--profile]`
prints a table, writes var/bench/bench.json and var/bench/bench.png. With --profile only
hybridq runs, each of its processes sampled by py-spy (collapsed stacks in var/bench/profile/;
sampling costs CPU, so figures of a profiled run are not quoted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bench import report, systems

OUT = Path("var/bench")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16, help="hybridq WORKER_CONCURRENCY")
    parser.add_argument("--only", default="hybridq,celery,dramatiq,hop")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--no-half-rate",
        action="store_true",
        help="skip the second hybridq run paced at half its burst rate (projection lag)",
    )
    args = parser.parse_args()
    chosen = ["hybridq"] if args.profile else args.only.split(",")
    load_before = os.getloadavg()
    runs = []
    for name in chosen:
        print(f"running {name} ({args.jobs} jobs)...", flush=True)
        if name == "hybridq":
            profile = OUT / "profile" if args.profile else None
            runs.append(asyncio.run(systems.hybridq(args.jobs, args.concurrency, profile)))
            if not (args.profile or args.no_half_rate):
                half = report.figures(runs[-1])["jobs_per_s"] / 2
                print(f"running hybridq paced at {half:.0f} jobs/s...", flush=True)
                runs.append(asyncio.run(systems.hybridq(args.jobs, args.concurrency, rate=half)))
        elif name == "celery":
            runs.append(asyncio.run(systems.celery(args.jobs)))
        elif name == "dramatiq":
            runs.append(asyncio.run(systems.dramatiq(args.jobs)))
        elif name == "hop":
            runs.append(asyncio.run(systems.hop(args.jobs)))
        else:
            parser.error(f"unknown system {name}")
    load_after = os.getloadavg()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load = (
        f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"({os.cpu_count()} cores); uptime: {uptime}"
    )
    figures = [report.figures(r) for r in runs]
    print(report.table(figures, load))
    meta = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python -m bench.compare --jobs {args.jobs}",
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load": load,
    }
    path = report.write(figures, meta, OUT)
    report.plot(figures, OUT / "bench.png")
    print(f"wrote {path} and {OUT / 'bench.png'}")


if __name__ == "__main__":
    main()
