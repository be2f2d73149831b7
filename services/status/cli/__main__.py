"""`python -m services.status.cli` (the `hybridq` command)."""

from services.status.cli import main

main()
