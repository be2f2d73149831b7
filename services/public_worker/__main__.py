"""`python -m services.public_worker`"""

import asyncio

from shared.contracts.jobs import Site
from shared.logs import configure
from shared.settings import WorkerSettings
from shared.worker.service import build


def main() -> None:
    settings = WorkerSettings()
    configure("public_worker", settings.log_level)
    asyncio.run(build(Site.PUBLIC, settings).app.run())


if __name__ == "__main__":
    main()
