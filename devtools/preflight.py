"""Before the connected tests: RabbitMQ (with its management API) and Postgres answer."""

from __future__ import annotations

import sys

from devtools.environment import check_services, ensure_management


def main() -> int:
    problems = check_services()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    ensure_management()
    return 0


if __name__ == "__main__":
    sys.exit(main())
