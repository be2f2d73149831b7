"""The dashboard (`GET /ui`): static HTML, CSS and ES modules that read only the public API."""
