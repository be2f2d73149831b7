"""The status service's use cases: each a function on a unit of work (unit_of_work.py),
knowing nothing of Postgres or the broker."""
