"""`python -m services.status [api | projector | migrate]`.

No argument: the HTTP API in this process and the write side (projection, relays, sweeps,
schedules) in a child process (`write_side.py`). `api` and `projector` run one half each,
for deployments that scale them apart; `migrate` upgrades the database and exits.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

# Until the service installs its own drain handler, SIGTERM means: exit 0 (nothing held).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


import uvicorn  # noqa: E402

from services.status.entrypoints import write_side  # noqa: E402 (imports no metric yet)
from shared.logs import configure  # noqa: E402
from shared.settings import StatusSettings, load  # noqa: E402
from shared.startup import require  # noqa: E402

USAGE = "use: python -m services.status [api | projector | migrate]"


def main(argv: list[str]) -> int:
    settings = load(StatusSettings)
    command = argv[0] if argv else "serve"
    if len(argv) > 1 or command not in ("serve", "api", "projector", "migrate"):
        print(f"unknown command {' '.join(argv)!r}; {USAGE}", file=sys.stderr)
        return 2
    configure("status" if command in ("serve", "api") else f"status-{command}", settings.log_level)
    # a broker or database the settings name that cannot be used: one line, exit 3
    require(
        amqp_url=None if command == "migrate" else settings.amqp_url,
        database_url=settings.database_url,
    )
    if command == "migrate":
        from services.status.migrate import upgrade

        upgrade(settings.database_url)
        return 0
    if command == "projector":
        from services.status.bootstrap import serve_write_side

        write_side.run(settings, serve_write_side)
        return 0
    metrics = write_side.metrics_dir() if command == "serve" else None  # before any metric
    from services.status.bootstrap import create_app

    config = uvicorn.Config(
        create_app(settings, "split" if command == "serve" else "api"),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.drain_seconds),
    )
    try:
        _Server(config).run()
    finally:
        write_side.remove_metrics_dir(metrics)
    return 0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn drains on SIGTERM/SIGINT, then restores the handlers it found and
        re-raises the signal through them. SIG_IGN there (not a Python no-op, which CPython
        resets to the default action while the interpreter shuts down) lets the process
        finish and exit 0, even when more signals arrive at the end. Set just before
        uvicorn takes the signals, so none is ignored while the app is being built."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        with super().capture_signals():
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        write_side.begin_stop()  # drains beside the HTTP server, not after it
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
