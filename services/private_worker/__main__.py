"""`python -m services.private_worker`"""

from __future__ import annotations

import signal
import sys

# Until the service installs its own drain handler, SIGTERM means: exit 0 (nothing held).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


import logging  # noqa: E402

from shared.contracts.jobs import Site  # noqa: E402
from shared.errors import HandlerModuleError  # noqa: E402
from shared.logs import configure  # noqa: E402
from shared.service import run  # noqa: E402
from shared.settings import WorkerSettings, load  # noqa: E402
from shared.startup import require  # noqa: E402
from shared.worker.service import build  # noqa: E402


def main() -> None:
    settings = load(WorkerSettings)
    configure("private_worker", settings.log_level)
    try:
        worker = build(Site.PRIVATE, settings)
    except HandlerModuleError as exc:  # one clear line, and no start
        logging.getLogger("hybridq.worker").critical(str(exc))
        sys.exit(3)
    require(amqp_url=settings.amqp_url)  # else one clear line, exit 3
    run(worker.app)


if __name__ == "__main__":
    main()
