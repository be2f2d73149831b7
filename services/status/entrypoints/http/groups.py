"""Job groups: submit a saga of jobs with compensations, and follow it."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.status.adapters.read_models import GroupView, group_view
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res, backend_trouble, policy_error, unavailable
from services.status.entrypoints.http.errors import error_body, problems
from services.status.entrypoints.http.schemas import SubmitJob, no_nul
from services.status.service_layer import groups, operations
from services.status.service_layer.unit_of_work import AlreadyGrouped
from shared.contracts.jobs import JobSubmitted, JobType

router = APIRouter(tags=["job groups"])


class Compensation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: JobType
    params: Annotated[dict[str, Any], AfterValidator(no_nul)] = Field(default_factory=dict)


class GroupJob(SubmitJob):
    compensation: Compensation | None = None


class GroupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[GroupJob] = Field(min_length=1, max_length=100)


class GroupAccepted(BaseModel):
    group_id: UUID
    job_ids: list[UUID]


@router.post(
    "/job-groups",
    status_code=202,
    response_model=GroupAccepted,
    dependencies=[Reader],
    responses=problems(409, _409="a job_id is already a member of another group"),
)
async def submit_group(res: Res, body: GroupRequest) -> GroupAccepted:
    """Every job runs; if one ends dead_lettered or cancelled, the compensation of every
    member that succeeded is submitted."""
    group_id = uuid4()
    members: list[tuple[JobSubmitted, Any]] = []
    for i, item in enumerate(body.jobs):
        fields = item.model_dump(exclude={"compensation"})
        job = JobSubmitted(**{**fields, "job_id": item.job_id or uuid4()})
        try:
            operations.check_policy(res.rules, job)
        except operations.PolicyRefusal as exc:
            raise policy_error(exc, f"jobs.{i}.") from exc
        compensation = item.compensation.model_dump() if item.compensation else None
        members.append((job, compensation))
    if len({job.job_id for job, _ in members}) != len(members):
        message = "job_ids in a group must differ"
        raise HTTPException(422, error_body(message, [("jobs", message)]))
    try:  # the relay publishes the members once this commits (no dual write)
        async with res.units() as uow:
            await groups.create(uow, group_id, members)
    except AlreadyGrouped as exc:
        raise HTTPException(409, f"already in another group: {exc}") from exc
    except Exception as exc:
        raise unavailable(backend_trouble(exc, "the database did not answer")) from exc
    return GroupAccepted(group_id=group_id, job_ids=[job.job_id for job, _ in members])


@router.get(
    "/job-groups/{group_id}",
    response_model=GroupView,
    dependencies=[Reader],
    responses=problems(404),
)
async def get_group(res: Res, group_id: UUID) -> GroupView:
    group = await group_view(res.reads, group_id)
    if group is None:
        raise HTTPException(404, f"no job group {group_id}")
    return group
