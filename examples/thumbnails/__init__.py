"""A complete example of user job handlers: point HYBRIDQ_HANDLERS at
`examples.thumbnails.handlers` and ROUTING_RULES at `examples/thumbnails/rules.toml`."""
