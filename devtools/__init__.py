"""Developer tooling: local environment checks and the process supervisor (make run, tests)."""
