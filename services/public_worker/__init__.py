"""The public site's worker: the shared worker configured for site 'public'."""
