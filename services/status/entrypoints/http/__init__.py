"""HTTP API of the status service (contract section 5), one router per feature."""
