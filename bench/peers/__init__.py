"""The peers hybridq is measured against, configured as their users would (bench only)."""
