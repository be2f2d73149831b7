"""Status: projects lifecycle events into Postgres and serves the HTTP API and CLI."""
