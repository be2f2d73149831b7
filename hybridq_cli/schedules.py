"""Schedule commands: `hybridq schedule add|list|get|pause|resume|delete`.

Exit status: 0 done; 1 the API refused or could not be reached (one line says why, e.g.
`404 no schedule ...`); 2 the command line itself was wrong.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hybridq_cli.app import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    TokenOption,
    app,
    call,
    fail,
    parse_params,
    table,
)

schedule = typer.Typer(help="Recurring jobs: cron or a period.", no_args_is_help=True)
app.add_typer(schedule, name="schedule")
COLUMNS = ("schedule_id", "name", "when", "enabled", "next_run_at", "last_run_at")


def _when(item: dict[str, Any]) -> str:
    if item.get("cron"):
        return f"{item['cron']} ({item['timezone']})"
    return f"every {item['every_seconds']}s"


@schedule.command("add")
def add(
    name: str,
    job_type: str,
    cron: Annotated[str | None, typer.Option(help="5-field cron expression")] = None,
    every: Annotated[int | None, typer.Option(help="period in seconds", min=1)] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone of the cron expression")] = "UTC",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="k=v (v as JSON)")
    ] = None,
    priority: Annotated[int | None, typer.Option(min=0, max=9)] = None,
    target: Annotated[str | None, typer.Option(help="public or private")] = None,
    classification: Annotated[str | None, typer.Option(help="public|internal|confidential")] = None,
    max_attempts: Annotated[int | None, typer.Option()] = None,
    paused: Annotated[bool, typer.Option("--paused", metavar="", help="create it paused")] = False,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule; prints its schedule_id and next run."""
    if (cron is None) == (every is None):
        fail("give exactly one of --cron or --every", 2)
    job = {
        k: v
        for k, v in {
            "job_type": job_type,
            "params": parse_params(param),
            "priority": priority,
            "target_cloud": target,
            "data_classification": classification,
            "max_attempts": max_attempts,
        }.items()
        if v is not None
    }
    body: dict[str, Any] = {"name": name, "timezone": timezone, "job": job, "enabled": not paused}
    body.update({"cron": cron} if cron is not None else {"every_seconds": every})
    answer = call(api, token, "POST", "/schedules", json=body)
    if as_json:
        typer.echo(json.dumps(answer))
    else:
        typer.echo(f"{answer['schedule_id']}  next run {answer['next_run_at'] or '(paused)'}")


@schedule.command("list")
def list_schedules(
    api: ApiOption = DEFAULT_API, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Every schedule, oldest first."""
    page = call(api, token, "GET", "/schedules")
    if as_json:
        typer.echo(json.dumps(page))
    else:
        table([{**item, "when": _when(item)} for item in page["items"]], COLUMNS)


@schedule.command("get")
def get(
    schedule_id: str,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One schedule, with its most recent jobs."""
    item = call(api, token, "GET", f"/schedules/{schedule_id}")
    if as_json:
        typer.echo(json.dumps(item, indent=2))
        return
    for key, value in item.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        typer.echo(f"{key:16} {shown}")


def _set_enabled(
    schedule_id: str, enabled: bool, api: str, token: str | None, as_json: bool
) -> None:
    item = call(api, token, "PATCH", f"/schedules/{schedule_id}", json={"enabled": enabled})
    if as_json:
        typer.echo(json.dumps(item))
    else:
        state = f"resumed, next run {item['next_run_at']}" if enabled else "paused"
        typer.echo(f"schedule {schedule_id} {state}")


@schedule.command("pause")
def pause(
    schedule_id: str,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop firing until resumed."""
    _set_enabled(schedule_id, False, api, token, as_json)


@schedule.command("resume")
def resume(
    schedule_id: str,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire again from the next fire time (what fell in the pause is skipped)."""
    _set_enabled(schedule_id, True, api, token, as_json)


@schedule.command("delete")
def delete(schedule_id: str, api: ApiOption = DEFAULT_API, token: TokenOption = None) -> None:
    """Delete a schedule (the jobs it made stay)."""
    call(api, token, "DELETE", f"/schedules/{schedule_id}")
    typer.echo(f"schedule {schedule_id} deleted")
