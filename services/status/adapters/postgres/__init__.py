"""The status store on Postgres: one module per repository (jobs, dead letters, groups,
schedules, the fleet, the outbox) and the unit of work composing them on one transaction."""

from services.status.adapters.postgres.jobs import view_of
from services.status.adapters.postgres.schedules import due_at
from services.status.adapters.postgres.unit_of_work import PgUnitOfWork, unit_of_work

__all__ = ["PgUnitOfWork", "due_at", "unit_of_work", "view_of"]
