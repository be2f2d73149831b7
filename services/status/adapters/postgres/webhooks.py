"""The webhooks repository: webhooks, their queued deliveries (claimed with a lease, a
job's oldest undecided one first) and the attempts log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, any_, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.tables import webhook_attempts, webhook_deliveries, webhooks
from services.status.domain.webhooks import Webhook
from services.status.service_layer.unit_of_work import Attempt, Delivery
from shared.contracts.events import AnyEvent


def _webhook(row: Any) -> Webhook:
    m = row._mapping
    return Webhook(
        webhook_id=m["webhook_id"],
        url=m["url"],
        events=tuple(m["events"]),
        job_type=m["job_type"],
        secret=m["secret"],
        created_at=m["created_at"],
    )


_QUEUE_DELIVERIES = insert(webhook_deliveries).on_conflict_do_nothing(
    constraint="uq_webhook_deliveries_event"
)
_d = webhook_deliveries
_CLAIM = text(
    """
    SELECT d.delivery_id FROM webhook_deliveries d
    WHERE d.webhook_id = :webhook_id AND d.state = 'pending' AND d.next_try_at <= :now
      AND (d.lease_until IS NULL OR d.lease_until < :now)
      AND NOT EXISTS (
        SELECT 1 FROM webhook_deliveries e
        WHERE e.webhook_id = d.webhook_id AND e.job_id = d.job_id AND e.state = 'pending'
          AND (e.occurred_at, e.rank, e.event_id) < (d.occurred_at, d.rank, d.event_id))
    ORDER BY d.next_try_at, d.delivery_id
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
    """
)


class PgWebhooks:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, hook: Webhook) -> None:
        await self.conn.execute(
            webhooks.insert().values(
                webhook_id=hook.webhook_id,
                url=hook.url,
                events=list(hook.events),
                job_type=hook.job_type,
                secret=hook.secret,
                created_at=hook.created_at,
            )
        )

    async def all(self) -> list[Webhook]:
        rows = await self.conn.execute(select(webhooks).order_by(webhooks.c.created_at))
        return [_webhook(r) for r in rows]

    async def get(self, webhook_id: UUID) -> Webhook | None:
        row = (
            await self.conn.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id))
        ).first()
        return None if row is None else _webhook(row)

    async def delete(self, webhook_id: UUID) -> bool:
        await self.conn.execute(
            delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id)
        )
        gone = await self.conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))
        return bool(gone.rowcount)

    async def queue(self, pairs: Sequence[tuple[Webhook, AnyEvent]]) -> None:
        await self.conn.execute(
            _QUEUE_DELIVERIES,
            [
                {
                    "webhook_id": hook.webhook_id,
                    "event_id": event.event_id,
                    "job_id": event.job_id,
                    "event_type": event.type,
                    "occurred_at": event.occurred_at,
                    "rank": event.rank,
                    "body": event.model_dump_json(),
                }
                for hook, event in pairs
            ],
        )

    async def claim(
        self, webhook_id: UUID, now: datetime, lease_until: datetime, token: UUID, limit: int
    ) -> list[Delivery]:
        ids = list(
            await self.conn.scalars(_CLAIM, {"webhook_id": webhook_id, "now": now, "limit": limit})
        )
        if not ids:
            return []
        rows = await self.conn.execute(
            update(_d)
            .where(_d.c.delivery_id == any_(bindparam(None, ids, type_=ARRAY(BigInteger))))
            .values(lease_until=lease_until, lease_token=token)
            .returning(_d)
        )
        claimed = [
            Delivery(
                delivery_id=r.delivery_id,
                webhook_id=r.webhook_id,
                event_id=r.event_id,
                job_id=r.job_id,
                event_type=r.event_type,
                body=r.body,
                failures=r.failures,
                queued_at=r.queued_at,
                token=token,
            )
            for r in rows
        ]
        return sorted(claimed, key=lambda d: d.delivery_id)

    async def settle(self, delivery: Delivery, attempt: Attempt) -> bool:
        await self.conn.execute(webhook_attempts.insert().values(**asdict(attempt)))
        pending = attempt.outcome == "retrying"
        changes: dict[str, Any] = {"lease_until": None, "lease_token": None}
        if pending:
            changes.update(failures=_d.c.failures + 1, next_try_at=attempt.next_try_at)
        else:
            changes.update(
                state=attempt.outcome,
                decided_at=attempt.attempted_at,
                failures=_d.c.failures + (0 if attempt.outcome == "delivered" else 1),
            )
        done = await self.conn.execute(
            update(_d)
            .where(
                _d.c.delivery_id == delivery.delivery_id,
                _d.c.lease_token == delivery.token,
                _d.c.state == "pending",
            )
            .values(**changes)
        )
        return bool(done.rowcount)

    async def attempts(self, webhook_id: UUID, job_id: UUID | None, limit: int) -> list[Attempt]:
        a = webhook_attempts
        query = select(a).where(a.c.webhook_id == webhook_id)
        if job_id is not None:
            query = query.where(a.c.job_id == job_id)
        rows = await self.conn.execute(query.order_by(a.c.attempt_id.desc()).limit(limit))
        fields = [f for f in Attempt.__dataclass_fields__]
        return [Attempt(**{f: r._mapping[f] for f in fields}) for r in rows]

    async def purge(self, before: datetime, limit: int) -> int:
        old = (
            select(_d.c.delivery_id)
            .where(_d.c.state != "pending", _d.c.queued_at < before)
            .limit(limit)
        )
        result = await self.conn.execute(delete(_d).where(_d.c.delivery_id.in_(old)))
        return result.rowcount or 0
