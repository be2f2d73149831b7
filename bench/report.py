"""Figures of a set of runs: the table, the JSON and the plot (var/bench/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.measure import percentile
from bench.systems import Run

BIN_SECONDS = 0.25
TARGET_SPREAD = 0.15  # issue: throughput within 15% from N=1,000 to N=20,000
# ... and with a million jobs stored, within 15% of the empty rate: either way, since a
# stored/empty ratio far above 1 says the two runs met different machines, not a held target
TARGET_STORED = 0.15
TARGET_READ_P99_MS = 50.0
# issue 21: broker messages per job at full load (the broker's counters), the rate and the
# whole-machine CPU per job against Dramatiq's in the same run, latency and projection lag
# at half the measured rate
TARGET_MESSAGES_PER_JOB = 2.3
TARGET_RATE_VS_DRAMATIQ = 0.75
TARGET_CPU_VS_DRAMATIQ = 1.5
TARGET_HALF_P50_MS = 50.0
TARGET_HALF_P99_MS = 250.0
TARGET_HALF_LAG_P99_MS = 250.0


def figures(run: Run) -> dict[str, Any]:
    keys = [k for k in run.sent if k in run.visible]
    start = min(run.sent.values())
    end = max(run.visible[k] for k in keys)
    latency = sorted((run.visible[k] - run.sent[k]) * 1000 for k in keys)
    lag = sorted(run.lag_ms)
    cpu = run.watch.cpu_ms()
    # the bench's own processes (publisher, read probe) are neither the system's nor shared
    own = {g: ms for g, ms in cpu.items() if "shared" not in g and not g.startswith("bench ")}
    extra: dict[str, Any] = {}
    if run.stored:
        extra["stored_jobs"] = run.stored
        extra["seeding"] = run.seeding
    if run.reads:
        extra["read_probe"] = {k: v for k, v in run.reads.items() if k not in ("ms", "errors")}
        # from each answer's Server-Timing: its time in the service and the database part
        service: dict[str, list[float]] = {}
        database: dict[str, list[float]] = {}
        for _, endpoint, _, app_ms, db_ms in run.reads.get("timeline", []):
            if app_ms is not None:
                service.setdefault(endpoint, []).append(app_ms)
            if db_ms is not None:
                database.setdefault(endpoint, []).append(db_ms)
        extra["reads_ms"] = {
            endpoint: _read_figures(
                ms, run.reads["errors"][endpoint], service.get(endpoint), database.get(endpoint)
            )
            for endpoint, ms in run.reads["ms"].items()
        }
    return {
        "system": run.system,
        "config": run.config,
        "jobs": run.n,
        "completed": len(keys),
        "seconds": end - start,
        "jobs_per_s": len(keys) / (end - start),
        "publish_seconds": max(run.sent.values()) - start,
        "latency_ms": {p: percentile(latency, p) for p in (50, 95, 99)},
        "projection_lag_p99_ms": percentile(lag, 99) if lag else None,
        "cpu_ms_per_job": {g: ms / run.n for g, ms in cpu.items()},
        "own_processes_cpu_ms_per_job": sum(own.values()) / run.n,
        "machine_cpu_ms_per_job": run.watch.machine_ms() / run.n,
        "machine_cpu_ms_per_job_net": _net(run, "machine", run.watch.machine_ms()),
        "shared_cpu_ms_per_job_net": {
            g: _net(run, g, ms) for g, ms in cpu.items() if "shared" in g
        },
        "background_ms_per_s": run.watch.background,
        "window_seconds": run.watch.seconds(),
        "peak_rss_mb": run.watch.peak_rss_mb(),
        "broker_messages_per_job": {k: v / run.n for k, v in run.broker.items()},
        "broker_queues_per_job": {
            q: {k: v / run.n for k, v in c.items()} for q, c in sorted(run.queues.items())
        },
        "completions_per_bin": _timeline([run.visible[k] - start for k in keys]),
        "latencies_ms": latency,
        **extra,
    }


def _read_figures(
    ms: list[float], errors: int, server: list[float] | None, database: list[float] | None
) -> dict[str, Any]:
    ordered = sorted(ms)
    return {
        "requests": len(ordered),
        "errors": errors,
        **{f"p{p}": percentile(ordered, p) for p in (50, 95, 99)},
        "max": ordered[-1] if ordered else float("nan"),
        "server_p99": percentile(sorted(server), 99) if server else float("nan"),
        # the part of the service's time spent in database reads (Server-Timing `db`)
        "database_p99": percentile(sorted(database), 99) if database else float("nan"),
    }


def summaries(runs: list[Run], all_figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Against the issue's targets: hybridq's burst rate across N (`--scale`), with jobs
    stored against without (`--seed`), and the reads' p99 (read probe). Empty when the
    runs were none of those."""
    bursts = [
        (r, f) for r, f in zip(runs, all_figures, strict=True) if r.system.startswith("hybridq")
    ]
    bursts = [(r, f) for r, f in bursts if not r.paced]
    out: dict[str, Any] = {}
    scale = []
    for stored in sorted({r.stored for r, _ in bursts}):
        rates = {r.n: f["jobs_per_s"] for r, f in bursts if r.stored == stored}
        if len(rates) > 1:
            spread = max(rates.values()) / min(rates.values()) - 1
            scale.append(
                {
                    "stored_jobs": stored,
                    "jobs_per_s": dict(sorted(rates.items())),
                    "spread": spread,
                    "held": spread <= TARGET_SPREAD,
                }
            )
    if scale:
        out["scale"] = scale
    stored_runs = []
    for r, f in bursts:
        empty = next((f0 for r0, f0 in bursts if r0.n == r.n and not r0.stored), None)
        if r.stored and empty:
            ratio = f["jobs_per_s"] / empty["jobs_per_s"]
            stored_runs.append(
                {
                    "jobs": r.n,
                    "stored_jobs": r.stored,
                    "empty_jobs_per_s": empty["jobs_per_s"],
                    "stored_jobs_per_s": f["jobs_per_s"],
                    "ratio": ratio,
                    "held": abs(ratio - 1) <= TARGET_STORED,
                }
            )
    if stored_runs:
        out["stored"] = stored_runs
    reads = {
        label(f, all_figures): all(
            e["p99"] < TARGET_READ_P99_MS and not e["errors"] for e in f["reads_ms"].values()
        )
        for f in all_figures
        if "reads_ms" in f
    }
    if reads:
        out["reads_p99_held"] = reads
    return out


def _net(run: Run, group: str, ms: float) -> float:
    """CPU per job minus what the group spent at its idle rate over the same window."""
    idle = run.watch.background.get(group, 0.0) * run.watch.seconds()
    return max(0.0, ms - idle) / run.n


def _timeline(offsets: list[float]) -> list[int]:
    bins = [0] * (int(max(offsets, default=0) / BIN_SECONDS) + 1)
    for t in offsets:
        bins[int(t / BIN_SECONDS)] += 1
    return bins


def ratios(all_figures: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """hybridq against each other system: jobs/s and whole-machine CPU per job."""
    mine = next((f for f in all_figures if f["system"] == "hybridq"), None)
    if mine is None:
        return {}
    return {
        f["system"]: {
            "jobs_per_s": mine["jobs_per_s"] / f["jobs_per_s"],
            "machine_cpu_per_job": mine["machine_cpu_ms_per_job"] / f["machine_cpu_ms_per_job"],
            "machine_cpu_per_job_net": mine["machine_cpu_ms_per_job_net"]
            / max(f["machine_cpu_ms_per_job_net"], 1e-9),
            "own_processes_cpu_per_job": mine["own_processes_cpu_ms_per_job"]
            / f["own_processes_cpu_ms_per_job"],
        }
        for f in all_figures
        if not f["system"].startswith("hybridq")
    }


def issue_targets(all_figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 21's targets, each with what this run measured and whether it held (a target
    whose runs are not in this invocation is left out)."""
    burst = next((f for f in all_figures if f["system"] == "hybridq"), None)
    paced = next((f for f in all_figures if f["system"].startswith("hybridq at ")), None)
    dramatiq = next((f for f in all_figures if f["system"] == "dramatiq"), None)
    rows: list[dict[str, Any]] = []

    def row(target: str, measured: str, held: bool) -> None:
        rows.append({"target": target, "measured": measured, "held": held})

    if burst is not None:
        m = burst["broker_messages_per_job"]
        for key in ("published", "delivered"):
            if key in m:
                row(
                    f"broker messages {key} per job (burst) <= {TARGET_MESSAGES_PER_JOB}",
                    f"{m[key]:.2f}",
                    m[key] <= TARGET_MESSAGES_PER_JOB,
                )
    if burst is not None and dramatiq is not None:
        rate = burst["jobs_per_s"] / dramatiq["jobs_per_s"]
        row(
            f"jobs/s >= {TARGET_RATE_VS_DRAMATIQ}x Dramatiq's",
            f"{rate:.2f}x",
            rate >= TARGET_RATE_VS_DRAMATIQ,
        )
        cpu = burst["machine_cpu_ms_per_job"] / dramatiq["machine_cpu_ms_per_job"]
        row(
            f"whole-machine CPU per job <= {TARGET_CPU_VS_DRAMATIQ}x Dramatiq's",
            f"{cpu:.2f}x",
            cpu <= TARGET_CPU_VS_DRAMATIQ,
        )
    if paced is not None:
        lat = paced["latency_ms"]
        row(
            f"half rate: submit->succeeded p50 <= {TARGET_HALF_P50_MS:.0f} ms",
            f"{lat[50]:.0f} ms (p95 {lat[95]:.0f})",
            lat[50] <= TARGET_HALF_P50_MS,
        )
        row(
            f"half rate: submit->succeeded p99 <= {TARGET_HALF_P99_MS:.0f} ms",
            f"{lat[99]:.0f} ms",
            lat[99] <= TARGET_HALF_P99_MS,
        )
        lag = paced["projection_lag_p99_ms"]
        if lag is not None:
            row(
                f"half rate: projection lag p99 < {TARGET_HALF_LAG_P99_MS:.0f} ms",
                f"{lag:.0f} ms",
                lag < TARGET_HALF_LAG_P99_MS,
            )
    return rows


def label(f: dict[str, Any], all_figures: list[dict[str, Any]]) -> str:
    """The run's system, and its N when another run has the same system name."""
    twins = sum(1 for g in all_figures if g["system"] == f["system"])
    return f["system"] if twins < 2 else f"{f['system']} ({f['jobs']:,} jobs)"


def _yes(held: bool) -> str:
    return "yes" if held else "**no**"


def _targets(all_figures: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The tables of the seeded, scaled and probed runs (nothing for a plain run)."""
    lines: list[str] = []
    for f in all_figures:
        if seeding := f.get("seeding"):
            lines += [
                "",
                f"seeded before {label(f, all_figures)}: {seeding['jobs']:,} succeeded jobs, "
                f"{seeding['events']:,} events, {seeding['ledger_rows']:,} router ledger rows "
                f"in {seeding['insert_seconds']:.0f} s, VACUUM (ANALYZE) + CHECKPOINT "
                f"{seeding['vacuum_seconds']:.0f} s; job_counts and /stats = count(*) checked",
            ]
    for row in summary.get("scale", []):
        rates = row["jobs_per_s"]
        lines += [
            "",
            f"| throughput across N ({row['stored_jobs']:,} stored) "
            f"| jobs/s at N = {' / '.join(f'{n:,}' for n in rates)} "
            f"| spread max/min - 1 | within {TARGET_SPREAD:.0%}? |",
            "|---|---|---|---|",
            f"| hybridq burst | {' / '.join(f'{v:,.0f}' for v in rates.values())} "
            f"| {row['spread']:.1%} | {_yes(row['held'])} |",
        ]
    if summary.get("stored"):
        lines += [
            "",
            "| jobs | jobs/s, empty store | jobs/s, jobs stored | stored ÷ empty "
            f"| within {TARGET_STORED:.0%}? |",
            "|---|---|---|---|---|",
        ]
        for row in summary["stored"]:
            lines.append(
                f"| {row['jobs']:,} | {row['empty_jobs_per_s']:,.0f} "
                f"| {row['stored_jobs_per_s']:,.0f} ({row['stored_jobs']:,} stored) "
                f"| {row['ratio']:.2f} | {_yes(row['held'])} |"
            )
    probed = [f for f in all_figures if "reads_ms" in f]
    if probed:
        lines += [
            "",
            "| run | read (while the load ran) | requests | errors "
            f"| p50 / p95 / p99 / max ms | in the service p99 ms | of it database p99 ms "
            f"| p99 < {TARGET_READ_P99_MS:.0f} ms? |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in probed:
            for endpoint, r in f["reads_ms"].items():
                held = r["p99"] < TARGET_READ_P99_MS and not r["errors"]
                lines.append(
                    f"| {label(f, all_figures)} | {endpoint} | {r['requests']} | {r['errors']} "
                    f"| {r['p50']:.1f} / {r['p95']:.1f} / {r['p99']:.1f} / {r['max']:.1f} "
                    f"| {r.get('server_p99', float('nan')):.1f} "
                    f"| {r.get('database_p99', float('nan')):.1f} | {_yes(held)} |"
                )
        for f in probed:
            probe = f["read_probe"]
            deep = (
                f"a page {probe['deep_depth']:,} seeded jobs deep (+ the run's)"
                if probe["deep_depth"]
                else "walking back page by page from the first page"
            )
            lines.append(
                f"read probe of {label(f, all_figures)}: {probe['rate']:g} req/s round-robin, "
                f"{probe['seconds']:.1f} s, own process; ids: {probe['ids']}; deep page: {deep}"
            )
    return lines


def table(
    all_figures: list[dict[str, Any]], load: str, summary: dict[str, Any] | None = None
) -> str:
    lines = [
        "| system | jobs | jobs/s | latency p50 / p95 / p99 ms | projection lag p99 ms "
        "| machine CPU ms/job raw / net | own processes CPU ms/job "
        "| broker msgs/job published / delivered / acked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in all_figures:
        lat = f["latency_ms"]
        lag = f["projection_lag_p99_ms"]
        m = f["broker_messages_per_job"]
        lines.append(
            f"| {f['system']} | {f['completed']} | {f['jobs_per_s']:,.0f} "
            f"| {lat[50]:,.0f} / {lat[95]:,.0f} / {lat[99]:,.0f} "
            f"| {'' if lag is None else f'{lag:,.0f}'} "
            f"| {f['machine_cpu_ms_per_job']:.2f} / {f['machine_cpu_ms_per_job_net']:.2f} "
            f"| {f['own_processes_cpu_ms_per_job']:.2f} "
            f"| {m.get('published', 0):.2f} / {m.get('delivered', 0):.2f} "
            f"/ {m.get('acked', 0):.2f} |"
        )
    lines += [
        "",
        "| system | process | CPU ms/job (shared: raw / net) | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for f in all_figures:
        for group, ms in f["cpu_ms_per_job"].items():
            net = f["shared_cpu_ms_per_job_net"].get(group)
            shown = f"{ms:.2f}" if net is None else f"{ms:.2f} / {net:.2f}"
            rss = f["peak_rss_mb"].get(group, 0)
            lines.append(f"| {label(f, all_figures)} | {group} | {shown} | {rss:.0f} |")
    r = ratios(all_figures)
    if r:
        lines += [
            "",
            "| hybridq vs | jobs/s | machine CPU/job raw / net | own processes CPU/job |",
        ]
        lines.append("|---|---|---|---|")
        for peer, x in r.items():
            lines.append(
                f"| {peer} | {x['jobs_per_s']:.2f}x | {x['machine_cpu_per_job']:.2f}x / "
                f"{x['machine_cpu_per_job_net']:.2f}x "
                f"| {x['own_processes_cpu_per_job']:.2f}x |"
            )
    for f in all_figures:
        if f.get("broker_queues_per_job"):
            lines += [
                "",
                f"| {label(f, all_figures)}: queue | routed in per job | delivered per job |",
                "|---|---|---|",
            ]
            lines += [
                f"| {q} | {c['in']:.2f} | {c['delivered']:.2f} |"
                for q, c in f["broker_queues_per_job"].items()
            ]
    checks = issue_targets(all_figures)
    if checks:
        lines += ["", "| issue 21 target | measured | met? |", "|---|---|---|"]
        lines += [f"| {c['target']} | {c['measured']} | {_yes(c['held'])} |" for c in checks]
    lines += _targets(all_figures, summary or {})
    lines += [
        "",
        "net = minus the machine's (or shared server's) busy rate measured over 4 s just "
        "before each run, times the run's window",
        f"load: {load}",
    ]
    return "\n".join(lines)


def plot(all_figures: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (over_time, latency) = plt.subplots(1, 2, figsize=(13, 4.5))
    for f in all_figures:
        bins = f["completions_per_bin"]
        over_time.plot(
            [i * BIN_SECONDS for i in range(len(bins))],
            [b / BIN_SECONDS for b in bins],
            label=f"{label(f, all_figures)} ({f['jobs_per_s']:,.0f} jobs/s)",
        )
        lat = f["latencies_ms"]
        latency.plot(
            lat, [(i + 1) / len(lat) for i in range(len(lat))], label=label(f, all_figures)
        )
    over_time.set(
        xlabel="seconds since the first publish",
        ylabel="jobs succeeded per second",
        title="Throughput over time",
    )
    latency.set(
        xscale="log",
        xlabel="submit -> succeeded visible (ms)",
        ylabel="fraction of jobs",
        title="Latency distribution (CDF)",
    )
    for ax in (over_time, latency):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    all_figures: list[dict[str, Any]],
    meta: dict[str, Any],
    out: Path,
    summary: dict[str, Any] | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    body = {
        **meta,
        "ratios": ratios(all_figures),
        "issue_21_targets": issue_targets(all_figures),
        **(summary or {}),
        "systems": all_figures,
    }
    path.write_text(json.dumps(body, indent=1))
    return path
