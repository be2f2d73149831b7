"""`python -m services.status` serves the API; `python -m services.status migrate` migrates."""

from __future__ import annotations

import signal
import sys

# Until the service installs its own drain handler, SIGTERM means: exit 0 (nothing held).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


import uvicorn  # noqa: E402

from shared.logs import configure  # noqa: E402
from shared.settings import StatusSettings, load  # noqa: E402


def main(argv: list[str]) -> int:
    settings = load(StatusSettings)
    configure("status", settings.log_level)
    if argv[:1] == ["migrate"]:
        from services.status.migrate import upgrade

        upgrade(settings.database_url)
        return 0
    if argv:
        print(
            f"unknown command {argv[0]!r}; use: python -m services.status [migrate]",
            file=sys.stderr,
        )
        return 2
    from services.status.app import create_app

    # uvicorn drains on SIGTERM/SIGINT, then restores the handlers it found at start-up and
    # re-raises the signal through them. SIG_IGN there (not a Python no-op, which CPython
    # resets to the default action while the interpreter shuts down) lets the process
    # finish and exit 0, even when more signals arrive at the end.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_seconds),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
