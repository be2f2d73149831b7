"""`python -m services.router`"""

import asyncio

from shared.logs import configure
from shared.settings import RouterSettings

from .app import build


def main() -> None:
    settings = RouterSettings()
    configure("router", settings.log_level)
    asyncio.run(build(settings).app.run())


if __name__ == "__main__":
    main()
