"""The status service's consumers: lifecycle events, dead letters and worker messages into
Postgres, each delivery settled by whose fault a failure is.

Projected or recorded: ack. The message's own fault (unreadable, forbidden, refused by
Postgres for its content): a dead letter with a reason, then ack. Anything wrong reaching the
database or the broker: held (bounded, `DB_HOLD_SECONDS`), then handed back (nack, requeue).
Every consumer is a FastStream subscriber, so FastStream's in-memory test broker drives the
same code production runs.
"""
