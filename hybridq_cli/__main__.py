"""`python -m hybridq_cli` (the `hybridq` command)."""

from hybridq_cli import main

main()
