"""`python -m services.router`"""

from __future__ import annotations

import signal
import sys

# Until the service installs its own drain handler, SIGTERM means: exit 0 (nothing held).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


from shared.logs import configure  # noqa: E402
from shared.service import run  # noqa: E402
from shared.settings import RouterSettings, load  # noqa: E402
from shared.startup import require  # noqa: E402

from .app import build  # noqa: E402


def main() -> None:
    settings = load(RouterSettings)
    configure("router", settings.log_level)
    require(amqp_url=settings.amqp_url, database_url=settings.database_url)  # else exit 3
    run(build(settings).app)


if __name__ == "__main__":
    main()
