"""Webhooks (contract v1.2 §5.2): register, list, remove, and the deliveries log. Admin
only: a webhook sends every matching event, and its secret, to wherever its URL points."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.status.adapters import webhook_client
from services.status.domain.webhooks import RefusedUrl, Webhook
from services.status.entrypoints.http.auth import Admin
from services.status.entrypoints.http.deps import Res
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import Text
from services.status.service_layer import webhooks as use_cases

router = APIRouter(tags=["webhooks"])

NOT_FOUND = problems(404, _404="no such webhook")


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00\s]*$")]
    events: Annotated[list[Text], Field(max_length=20)] | None = None
    job_type: Text | None = None
    secret: Annotated[str, Field(min_length=16, max_length=200, pattern=r"^[^\x00]*$")] | None = (
        None
    )


class WebhookCreated(BaseModel):
    webhook_id: UUID
    secret: str


class WebhookOut(BaseModel):
    webhook_id: UUID
    url: str
    events: list[str]
    job_type: str | None
    created_at: datetime


class WebhookList(BaseModel):
    items: list[WebhookOut]


class AttemptOut(BaseModel):
    delivery_id: int
    event_id: UUID
    event_type: str
    job_id: UUID
    attempted_at: datetime
    outcome: str = Field(description="delivered, retrying or failed (given up)")
    status_code: int | None
    error: str | None
    next_try_at: datetime | None


class AttemptList(BaseModel):
    items: list[AttemptOut]


def _out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        webhook_id=hook.webhook_id,
        url=hook.url,
        events=list(hook.events),
        job_type=hook.job_type,
        created_at=hook.created_at,
    )


def _refused(field: str, message: str) -> HTTPException:
    return HTTPException(422, {"detail": message, "errors": [{"field": field, "message": message}]})


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, dependencies=[Admin])
async def create_webhook(res: Res, body: WebhookRequest) -> WebhookCreated:
    """Deliver each matching event (default: the terminal ones) to `url`, signed with
    `secret` (generated when not given). A URL whose host resolves to a loopback, private,
    link-local or multicast address is refused unless the host is in WEBHOOK_ALLOWED_HOSTS."""
    try:
        hook = use_cases.new(body.url, body.events, body.job_type, body.secret, datetime.now(UTC))
    except use_cases.UnknownEvents as exc:
        raise _refused("events", str(exc)) from exc
    except RefusedUrl as exc:
        raise _refused("url", str(exc)) from exc
    try:
        await webhook_client.checked(body.url, res.settings.allowed_webhook_hosts)
    except RefusedUrl as exc:
        raise _refused("url", str(exc)) from exc
    async with res.units() as uow:
        await use_cases.register(uow, hook)
    return WebhookCreated(webhook_id=hook.webhook_id, secret=hook.secret)


@router.get("/webhooks", response_model=WebhookList, dependencies=[Admin])
async def list_webhooks(res: Res) -> WebhookList:
    async with res.units() as uow:
        hooks = await uow.webhooks.all()
    return WebhookList(items=[_out(h) for h in hooks])


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=NOT_FOUND, dependencies=[Admin])
async def delete_webhook(res: Res, webhook_id: UUID) -> Response:
    """Remove the webhook, its queued deliveries and their log."""
    async with res.units() as uow:
        found = await uow.webhooks.delete(webhook_id)
    if not found:
        raise HTTPException(404, f"no webhook {webhook_id}")
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=AttemptList,
    responses=NOT_FOUND,
    dependencies=[Admin],
)
async def list_deliveries(
    res: Res,
    webhook_id: UUID,
    job_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AttemptList:
    """Each attempt, newest first: the event, the status code or error, when, and when it
    is tried next; `job_id` shows one job's."""
    async with res.units() as uow:
        if await uow.webhooks.get(webhook_id) is None:
            raise HTTPException(404, f"no webhook {webhook_id}")
        attempts = await uow.webhooks.attempts(webhook_id, job_id, limit)
    return AttemptList(
        items=[
            AttemptOut(
                delivery_id=a.delivery_id,
                event_id=a.event_id,
                event_type=a.event_type,
                job_id=a.job_id,
                attempted_at=a.attempted_at,
                outcome=a.outcome,
                status_code=a.status_code,
                error=a.error,
                next_try_at=a.next_try_at,
            )
            for a in attempts
        ]
    )
