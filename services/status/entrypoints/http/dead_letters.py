"""Dead letters: list them, and redrive them by ids or by filter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from services.status import operations, queries
from services.status.entrypoints.http.auth import Admin, Reader
from services.status.entrypoints.http.deps import Res, unavailable
from services.status.entrypoints.http.schemas import DeadLetterPage, Redriven, RedriveRequest

router = APIRouter(tags=["dead letters"])


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
    "/dead-letters/redrive", status_code=202, response_model=Redriven, dependencies=[Admin]
)
async def redrive(res: Res, body: RedriveRequest) -> Redriven:
    """Re-open dead-lettered jobs; `site` re-places them (residency permitting; refused
    letters are listed in `skipped`). Each dead letter is redriven at most once, even by
    concurrent requests: `redriven` counts the letters this request claimed."""
    letters = await queries.dead_letters_to_redrive(
        res.engine, ids=body.ids, reason=body.reason, job_type=body.job_type, limit=body.limit
    )
    try:
        count, skipped = await operations.redrive(res.engine, res.bus, letters, body.site)
    except operations.BackendUnavailable as exc:
        raise unavailable(exc) from exc
    return Redriven(redriven=count, skipped=skipped)
