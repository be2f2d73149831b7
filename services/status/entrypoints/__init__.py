"""How the outside reaches the status service: the HTTP API and dashboard, the consumers."""
