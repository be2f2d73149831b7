"""Handler modules the tests load through HYBRIDQ_HANDLERS."""
