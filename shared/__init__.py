"""Code every hybridq service imports: contracts, topology, settings and plumbing."""
