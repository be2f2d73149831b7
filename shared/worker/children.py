"""Child jobs a handler submits: checked here, published to `jobs.intake` by the worker."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.contracts.jobs import DataClassification, JobSubmitted
from shared.errors import PermanentJobError


def child_job(request: dict[str, Any], parent_classification: DataClassification) -> JobSubmitted:
    """The JobSubmitted of a `ctx.submit(...)` call, or PermanentJobError saying why not.

    A child of a confidential job must be confidential too: a handler cannot move the
    data it was given to the public cloud by submitting it onwards.
    """
    try:
        job = JobSubmitted.model_validate(request)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(job)'}: {e['msg']}" for e in exc.errors()
        )
        raise PermanentJobError(f"child job refused: {problems}") from exc
    confidential = DataClassification.CONFIDENTIAL
    if parent_classification is confidential and job.data_classification is not confidential:
        raise PermanentJobError(
            "child job refused: a child of a confidential job must be confidential"
        )
    return job
