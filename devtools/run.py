"""`make run`: everything up on this machine, demo jobs through it, then wait for Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from devtools.environment import create_database, create_vhost, preflight
from devtools.stack import Stack

VHOST = "hybridq"
DATABASE = "hybridq"
# the example handler package (README, "Your own job types") and the rules listing its types
EXAMPLE_HANDLERS = "examples.thumbnails.handlers"
EXAMPLE_RULES = "examples/thumbnails/rules.toml"
DEMO_JOBS = [
    {"job_type": "noop"},
    {"job_type": "8k_transcode", "params": {"work_ms": 200}},
    {"job_type": "sleep", "params": {"seconds": 1}, "data_classification": "confidential"},
    {"job_type": "flaky", "params": {"fail_times": 1}, "target_cloud": "public"},
    {"job_type": "noop", "delay_seconds": 2},
    {"job_type": "thumbnail_batch", "params": {"sizes": [64, 128]}},
]
TERMINAL = {"rejected", "succeeded", "dead_lettered", "cancelled"}
START_CHECK_SECONDS = 15.0


def main() -> int:
    if not preflight():
        return 1
    env = {
        "AMQP_URL": os.environ.get("AMQP_URL") or create_vhost(VHOST),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or create_database(DATABASE),
        "HYBRIDQ_HANDLERS": os.environ.get("HYBRIDQ_HANDLERS") or EXAMPLE_HANDLERS,
        "ROUTING_RULES": os.environ.get("ROUTING_RULES") or EXAMPLE_RULES,
    }
    stack = Stack(env, Path("var/log"))
    print("migrating the status database ...")
    try:
        stack.migrate()
    except subprocess.CalledProcessError as exc:  # e.g. a DATABASE_URL it cannot use
        print(f"migrate: {last_said(exc.stderr)}", file=sys.stderr)
        return 1
    stack.start()
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            stack.wait_ready()
        except RuntimeError:  # a service exited at start: its own one line says why
            # the others checking the same settings get to say theirs (a host that drops
            # packets takes shared.startup.CHECK_SECONDS); a healthy one is stopped after
            deadline = time.monotonic() + START_CHECK_SECONDS
            while time.monotonic() < deadline and any(
                p.poll() is None for p in stack.processes.values()
            ):
                time.sleep(0.2)
            for name, proc in stack.processes.items():
                if proc.poll() is not None:
                    said = last_said(stack.log_path(name).read_bytes())
                    print(f"{name} exited ({proc.returncode}): {said}", file=sys.stderr)
            return 1
        demo(stack.api)
        print(
            f"""
hybridq is running (logs in var/log/):
  dashboard      {stack.api}/ui
  API            {stack.api}            (OpenAPI docs: {stack.api}/docs)
  metrics        {stack.api}/metrics
  RabbitMQ UI    http://127.0.0.1:15672/#/queues  (guest/guest, vhost '{VHOST}')
  CLI            .venv/bin/hybridq list   |   .venv/bin/hybridq submit noop --watch
Press Ctrl-C to stop everything.""",
            flush=True,
        )
        while not stopping:
            if any(p.poll() is not None for p in stack.processes.values()):
                print("a service exited; see var/log/. Stopping.", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        print("\nstopping (SIGTERM: each service drains) ...")
        for name, code in stack.stop().items():
            print(f"  {name}: exit {code}")
    return 0


def last_said(output: bytes) -> str:
    """The last line a service wrote, its message only if it is a JSON log line."""
    lines = output.decode(errors="replace").strip().splitlines() or ["(nothing)"]
    try:
        return str(json.loads(lines[-1])["msg"])
    except (ValueError, KeyError, TypeError):
        return lines[-1]


def demo(api: str) -> None:
    with httpx.Client(base_url=api, timeout=10) as http:
        ids = [
            http.post("/jobs", json=job).raise_for_status().json()["job_id"] for job in DEMO_JOBS
        ]
        print(f"submitted {len(ids)} demo jobs; waiting for them to finish ...")
        deadline = time.monotonic() + 30
        views: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            for job_id in ids:
                response = http.get(f"/jobs/{job_id}")
                if response.status_code == 200:
                    views[job_id] = response.json()
            if len(views) == len(ids) and all(v["status"] in TERMINAL for v in views.values()):
                break
            time.sleep(0.3)
    print(f"\n{'job_id':36}  {'job_type':15}  {'site':7}  {'rule':9}  {'tries':5}  status")
    for job_id in ids:
        v = views.get(job_id, {})
        print(
            f"{job_id:36}  {v.get('job_type')!s:15}  {v.get('site')!s:7}  "
            f"{v.get('rule')!s:9}  {v.get('attempts')!s:5}  {v.get('status', 'unknown')}"
        )


if __name__ == "__main__":
    sys.exit(main())
