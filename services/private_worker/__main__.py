"""`python -m services.private_worker`"""

import asyncio

from shared.contracts.jobs import Site
from shared.logs import configure
from shared.settings import WorkerSettings
from shared.worker.service import build


def main() -> None:
    settings = WorkerSettings()
    configure("private_worker", settings.log_level)
    asyncio.run(build(Site.PRIVATE, settings).app.run())


if __name__ == "__main__":
    main()
