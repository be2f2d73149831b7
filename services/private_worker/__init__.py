"""The private site's worker: the shared worker configured for site 'private'."""
