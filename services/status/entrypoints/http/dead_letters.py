"""Dead letters: list them, and redrive them by ids or by filter."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from services.status.adapters import queries
from services.status.entrypoints.http.auth import Admin, Reader
from services.status.entrypoints.http.deps import Res, backend_trouble, unavailable
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import DeadLetterPage, Redriven, RedriveRequest
from services.status.service_layer import operations
from services.status.service_layer.unit_of_work import RedriveSelection

router = APIRouter(tags=["dead letters"])
log = logging.getLogger("hybridq.status.http")


@router.get("/dead-letters", response_model=DeadLetterPage, dependencies=[Reader])
async def list_dead_letters(
    res: Res,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    include_redriven: bool = False,
) -> dict[str, Any]:
    try:
        items, next_cursor = await queries.list_dead_letters(
            res.reads, limit=limit, cursor=cursor, include_redriven=include_redriven
        )
    except queries.BadCursor as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/dead-letters/redrive",
    status_code=202,
    response_model=Redriven,
    dependencies=[Admin],
    responses=problems(422, _422="invalid, or no selection (`{}`): say ids, a filter or all"),
)
async def redrive(res: Res, body: RedriveRequest) -> Redriven:
    """Re-open dead-lettered jobs: by `ids`, by filter (`reason`, `job_type`), or every one
    (`all: true`), at most `limit` per request; `site` re-places them (residency permitting; refused
    letters are listed in `skipped`). Each dead letter is redriven at most once, even by
    concurrent requests: `redriven` counts the letters this request claimed."""
    selection = RedriveSelection(
        ids=body.ids, reason=body.reason, job_type=body.job_type, limit=body.limit
    )
    try:
        async with res.units() as uow:
            result = await operations.redrive(uow, selection, body.site)
    except Exception as exc:
        raise unavailable(
            backend_trouble(exc, "the database did not answer; nothing was redriven")
        ) from exc
    try:  # claimed and queued: if the broker is away, the relay publishes it later
        await res.relay.publish(result.rows, res.settings.publish_timeout_seconds)
    except Exception as exc:
        backend_trouble(exc, "")
        log.warning("redrive queued; the relay will publish it", exc_info=True)
    skipped = [{"id": letter_id, "why": why} for letter_id, why in result.skipped]
    return Redriven(redriven=result.claimed, skipped=skipped)
