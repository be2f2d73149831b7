"""Schedules: create, list, show, pause/resume, delete (the firer runs them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from services.status.adapters import read_models
from services.status.domain.schedules import (
    CRON_PATTERN,
    MAX_EVERY_SECONDS,
    TIME_ZONES,
    BadCadence,
    Cadence,
    check_cron,
    zone,
)
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res, policy_error
from services.status.entrypoints.http.errors import error_body, problems
from services.status.entrypoints.http.schemas import refuse_null
from services.status.service_layer import operations
from services.status.service_layer import schedules as use_cases
from shared.contracts.jobs import MAX_MESSAGE_BYTES, JobSpec, JobSubmitted

router = APIRouter(tags=["schedules"])


class ScheduleRequest(BaseModel):
    """Exactly one of a cron expression (5 fields, in `timezone`) and a period
    (`every_seconds`); a job template."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["cron"]}, {"required": ["every_seconds"]}]},
    )

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    # the cadence fields are left out, never null: the document says so (no null in them)
    cron: Annotated[str | None, WithJsonSchema({"type": "string", "pattern": CRON_PATTERN})] = None
    every_seconds: Annotated[
        int | None,
        Field(ge=1, le=MAX_EVERY_SECONDS),
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_EVERY_SECONDS}),
    ] = None
    timezone: Annotated[str, Field(json_schema_extra={"enum": sorted(TIME_ZONES)})] = "UTC"
    job: JobSpec
    enabled: bool = True

    @field_validator("cron", "every_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return refuse_null(value)

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleRequest:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("give either cron or every_seconds, not both and not neither")
        return self

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        try:
            return None if value is None else check_cron(value)
        except BadCadence as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zone(value)
        except BadCadence as exc:
            raise ValueError(str(exc)) from exc
        return value


class ScheduleCreated(BaseModel):
    schedule_id: UUID
    next_run_at: datetime | None


class ScheduleList(BaseModel):
    items: list[read_models.ScheduleView]


class EnabledPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


def _field_error(field: str, message: str) -> HTTPException:
    return HTTPException(422, error_body(message, [(field, message)]))


def _check_job(res: Res, job: JobSpec) -> None:
    """The template must make a job POST /jobs would accept (placement policy included)."""
    sample = JobSubmitted(**job.model_dump(), job_id=uuid4())
    if len(sample.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
        raise _field_error("job", "a job message is at most 256 KiB")
    try:
        operations.check_policy(res.rules, sample)
    except operations.PolicyRefusal as exc:
        raise policy_error(exc, "job.") from exc


@router.post("/schedules", status_code=201, response_model=ScheduleCreated, dependencies=[Reader])
async def create_schedule(res: Res, body: ScheduleRequest) -> ScheduleCreated:
    """Each fire time submits one job (job_id derived from the schedule and the fire time)."""
    _check_job(res, body.job)
    cadence = Cadence(cron=body.cron, every_seconds=body.every_seconds, timezone=body.timezone)
    try:
        async with res.units() as uow:
            created = await use_cases.create(
                uow,
                name=body.name,
                cadence=cadence,
                job=body.job.model_dump(mode="json"),
                enabled=body.enabled,
                now=datetime.now(UTC),
            )
    except BadCadence as exc:
        raise _field_error("cron", str(exc)) from exc
    return ScheduleCreated(schedule_id=created.schedule_id, next_run_at=created.next_run_at)


@router.get("/schedules", response_model=ScheduleList, dependencies=[Reader])
async def list_schedules(res: Res) -> dict[str, Any]:
    return {"items": await read_models.list_schedules(res.reads)}


async def _one(res: Res, schedule_id: UUID) -> read_models.ScheduleView:
    found = await read_models.get_schedule(res.reads, schedule_id)
    if found is None:
        raise HTTPException(404, f"no schedule {schedule_id}")
    return found


@router.get(
    "/schedules/{schedule_id}",
    response_model=read_models.ScheduleView,
    dependencies=[Reader],
    responses=problems(404),
)
async def get_schedule(res: Res, schedule_id: UUID) -> read_models.ScheduleView:
    return await _one(res, schedule_id)


@router.patch(
    "/schedules/{schedule_id}",
    response_model=read_models.ScheduleView,
    dependencies=[Reader],
    responses=problems(404),
)
async def patch_schedule(
    res: Res, schedule_id: UUID, body: EnabledPatch
) -> read_models.ScheduleView:
    """Pause (`enabled: false`) or resume; resuming skips what fell in the pause."""
    async with res.units() as uow:
        found = await use_cases.set_enabled(uow, schedule_id, body.enabled, datetime.now(UTC))
    if not found:
        raise HTTPException(404, f"no schedule {schedule_id}")
    return await _one(res, schedule_id)


@router.delete(
    "/schedules/{schedule_id}",
    status_code=204,
    response_class=Response,
    dependencies=[Reader],
    responses=problems(404),
)
async def delete_schedule(res: Res, schedule_id: UUID) -> Response:
    async with res.units() as uow:
        found = await use_cases.delete(uow, schedule_id)
    if not found:
        raise HTTPException(404, f"no schedule {schedule_id}")
    return Response(status_code=204)
