"""How the status service reaches its outside: Postgres (the unit of work, tables, reads,
the outbox relay, leadership), and the bytes its queues carry (wire, sanitize)."""
