"""Bulk submission: `POST /jobs/batch`, up to 1,000 jobs each taken as `POST /jobs` would."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from fastapi import APIRouter
from pydantic import ValidationError

from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import (
    BackendUnavailable,
    Res,
    publish_all_within,
    unavailable,
)
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import (
    BatchAnswer,
    BatchRejected,
    BatchSubmitted,
    FieldErrorOut,
    SubmitBatch,
    SubmitJob,
)
from services.status.service_layer import operations
from shared.contracts.jobs import JobSubmitted
from shared.messages import Envelope

router = APIRouter(tags=["jobs"])


def _validated(raw: Any) -> JobSubmitted | operations.Refused:
    """One job of the batch as `POST /jobs` validates its body; its field errors named
    as there (relative to the job)."""
    try:
        body = SubmitJob.model_validate(raw)
        return JobSubmitted(**{**body.model_dump(), "job_id": body.job_id or uuid4()})
    except ValidationError as exc:
        return operations.Refused(
            [
                (".".join(str(p) for p in e["loc"]) or "(job)", e["msg"])
                for e in exc.errors(include_url=False)
            ]
        )


@router.post(
    "/jobs/batch",
    status_code=202,
    response_model=BatchAnswer,
    dependencies=[Reader],
    responses=problems(
        413,
        422,
        503,
        _413="body over 8 MiB",
        _422="not a batch: no `jobs`, or 0 or over 1,000",
        _503="the broker did not confirm every accepted job in time; retry the batch with the "
        "same job_ids (give each job its `job_id` to make a retry safe)",
    ),
)
async def submit_batch(res: Res, body: SubmitBatch) -> BatchAnswer:
    """Submit 1 to 1,000 jobs. Each is accepted or refused on its own, exactly as
    `POST /jobs` would take it (validation, residency and handlers, 256 KiB a job); the
    accepted ones are published together and the answer comes once the broker has
    confirmed every one. 202 with one item per job, in the request's order."""
    jobs = [_validated(raw) for raw in body.jobs]
    decided = operations.batch_submissions(res.rules, jobs)
    accepted = [d for d in decided if isinstance(d, Envelope)]
    if accepted:
        try:
            await publish_all_within(res, accepted, f"{len(accepted)} jobs")
        except BackendUnavailable as exc:
            raise unavailable(exc) from exc
    items: list[BatchSubmitted | BatchRejected] = []
    for index, (job, outcome) in enumerate(zip(jobs, decided, strict=True)):
        if isinstance(outcome, operations.Refused):
            errors = [FieldErrorOut(field=f, message=m) for f, m in outcome.errors]
            items.append(BatchRejected(index=index, errors=errors))
        elif isinstance(job, JobSubmitted):
            items.append(BatchSubmitted(index=index, job_id=job.job_id))
    return BatchAnswer(items=items)
