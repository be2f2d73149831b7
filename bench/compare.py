"""`make bench`: hybridq, Celery, Dramatiq and the bare broker hop, side by side in one run.

`python -m bench.compare [--jobs N] [--only hybridq,celery,dramatiq,hop] [--profile]`
prints a table, writes var/bench/bench.json and var/bench/bench.png. With --profile only
hybridq runs, each of its processes sampled by py-spy (collapsed stacks in var/bench/profile/;
sampling costs CPU, so figures of a profiled run are not quoted).

For the issue's scale targets (hybridq runs only; other systems run as before):
`--scale 1000,5000,20000` makes one hybridq burst run per N (a fresh sandbox each) and
reports the spread of their rates; `--seed N` stores N finished jobs and their events in
the sandbox's database before the services start (`bench/seed.py`) and runs each hybridq
burst twice, on an empty store and on the seeded one, for the ratio of their rates;
`--probe` (implied by --seed) times the status API's reads during every hybridq run
(`bench/probe.py`, `--probe-rate` requests per second).
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


def _sizes(text: str) -> list[int]:
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--scale wants N,N,... (positive), not {text!r}")
    return sizes


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
    parser.add_argument(
        "--scale",
        type=_sizes,
        default=None,
        help="hybridq: one burst run per N, e.g. 1000,5000,20000 (instead of --jobs)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="hybridq: N finished jobs stored before the run; each burst also runs on an "
        "empty store for the ratio (implies --probe)",
    )
    parser.add_argument(
        "--probe", action="store_true", help="hybridq: time the status API's reads meanwhile"
    )
    parser.add_argument("--probe-rate", type=float, default=20.0, help="read requests/s")
    args = parser.parse_args()
    chosen = ["hybridq"] if args.profile else args.only.split(",")
    probe_rate = args.probe_rate if (args.probe or args.seed) else None
    load_before = os.getloadavg()
    runs = []
    for name in chosen:
        if name != "hybridq":
            print(f"running {name} ({args.jobs} jobs)...", flush=True)
        if name == "hybridq":
            profile = OUT / "profile" if args.profile else None
            first = True
            for n in args.scale or [args.jobs]:
                for stored in [0, args.seed] if args.seed else [0]:
                    with_stored = f", {stored:,} finished jobs stored" if stored else ""
                    print(f"running {name} ({n} jobs{with_stored})...", flush=True)
                    runs.append(
                        asyncio.run(
                            systems.hybridq(
                                n, args.concurrency, profile, stored=stored, probe_rate=probe_rate
                            )
                        )
                    )
                    if first and not (args.profile or args.no_half_rate):
                        half = report.figures(runs[-1])["jobs_per_s"] / 2
                        print(f"running hybridq paced at {half:.0f} jobs/s...", flush=True)
                        runs.append(
                            asyncio.run(
                                systems.hybridq(
                                    n,
                                    args.concurrency,
                                    rate=half,
                                    stored=stored,
                                    probe_rate=probe_rate,
                                )
                            )
                        )
                    first = False
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
    summary = report.summaries(runs, figures)
    print(report.table(figures, load, summary))
    meta = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python -m bench.compare --jobs {args.jobs}" + _options(args),
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load": load,
    }
    path = report.write(figures, meta, OUT, summary)
    report.plot(figures, OUT / "bench.png")
    print(f"wrote {path} and {OUT / 'bench.png'}")


def _options(args: argparse.Namespace) -> str:
    """The options beyond --jobs that change what runs (none for a plain `make bench`)."""
    given = []
    if args.only != "hybridq,celery,dramatiq,hop":
        given.append(f"--only {args.only}")
    if args.no_half_rate:
        given.append("--no-half-rate")
    if args.scale:
        given.append(f"--scale {','.join(map(str, args.scale))}")
    if args.seed:
        given.append(f"--seed {args.seed}")
    if args.probe:
        given.append("--probe")
    if args.probe_rate != 20.0 and (args.probe or args.seed):
        given.append(f"--probe-rate {args.probe_rate:g}")
    return "".join(f" {g}" for g in given)


if __name__ == "__main__":
    main()
