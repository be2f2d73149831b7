"""Figures of a set of runs: the table, the JSON and the plot (var/bench/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.measure import percentile
from bench.systems import Run

BIN_SECONDS = 0.25


def figures(run: Run) -> dict[str, Any]:
    keys = [k for k in run.sent if k in run.visible]
    start = min(run.sent.values())
    end = max(run.visible[k] for k in keys)
    latency = sorted((run.visible[k] - run.sent[k]) * 1000 for k in keys)
    lag = sorted(run.lag_ms)
    cpu = run.watch.cpu_ms()
    own = {g: ms for g, ms in cpu.items() if "shared" not in g and g != "bench publisher"}
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
        "completions_per_bin": _timeline([run.visible[k] - start for k in keys]),
        "latencies_ms": latency,
    }


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


def table(all_figures: list[dict[str, Any]], load: str) -> str:
    lines = [
        "| system | jobs | jobs/s | latency p50 / p95 / p99 ms | projection lag p99 ms "
        "| machine CPU ms/job raw / net | own processes CPU ms/job | broker msgs/job in / out |",
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
            f"| {m.get('published', 0):.1f} / {m.get('delivered', 0):.1f} |"
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
            lines.append(
                f"| {f['system']} | {group} | {shown} | {f['peak_rss_mb'].get(group, 0):.0f} |"
            )
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
            label=f"{f['system']} ({f['jobs_per_s']:,.0f} jobs/s)",
        )
        lat = f["latencies_ms"]
        latency.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=f["system"])
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


def write(all_figures: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    body = {**meta, "ratios": ratios(all_figures), "systems": all_figures}
    path.write_text(json.dumps(body, indent=1))
    return path
