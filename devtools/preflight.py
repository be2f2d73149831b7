"""Before the connected tests: RabbitMQ (with its management API) and Postgres answer."""

from __future__ import annotations

import sys

from devtools.environment import preflight

if __name__ == "__main__":
    sys.exit(0 if preflight() else 1)
