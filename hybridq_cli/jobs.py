"""Job commands: submit, get, list, watch, cancel."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from hybridq_cli.app import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    TokenOption,
    app,
    call,
    client,
    fail,
    parse_params,
    table,
)


@app.command()
def submit(
    job_type: str,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="k=v (v as JSON)")
    ] = None,
    priority: Annotated[int | None, typer.Option(min=0, max=9)] = None,
    target: Annotated[str | None, typer.Option(help="public or private")] = None,
    classification: Annotated[str | None, typer.Option(help="public|internal|confidential")] = None,
    delay: Annotated[float | None, typer.Option(help="seconds before it may start")] = None,
    max_attempts: Annotated[int | None, typer.Option()] = None,
    watch_it: Annotated[
        bool, typer.Option("--watch", metavar="", help="follow it until it ends")
    ] = False,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job; prints its job_id."""
    params = parse_params(param)
    body = {
        k: v
        for k, v in {
            "job_type": job_type,
            "params": params,
            "priority": priority,
            "target_cloud": target,
            "data_classification": classification,
            "delay_seconds": delay,
            "max_attempts": max_attempts,
        }.items()
        if v is not None
    }
    answer = call(api, token, "POST", "/jobs", json=body)
    typer.echo(json.dumps(answer) if as_json else answer["job_id"])
    if watch_it:
        watch(answer["job_id"], api=api, token=token, as_json=as_json)


@app.command()
def get(
    job_id: str,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one job, and the child jobs it submitted (if any)."""
    view = call(api, token, "GET", f"/jobs/{job_id}")
    children = call(api, token, "GET", "/jobs", params={"parent_id": job_id, "limit": 500})
    if as_json:
        typer.echo(json.dumps({**view, "children": children["items"]}, indent=2))
        return
    for key, value in view.items():
        if value is not None:
            typer.echo(f"{key:20} {json.dumps(value) if isinstance(value, dict) else value}")
    if children["items"]:
        typer.echo(f"\nchildren ({len(children['items'])}):")
        table(children["items"], ("job_id", "job_type", "status", "site", "attempts"))


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option()] = None,
    site: Annotated[str | None, typer.Option()] = None,
    job_type: Annotated[str | None, typer.Option("--job-type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    query = {
        k: v
        for k, v in {"status": status, "site": site, "job_type": job_type, "limit": limit}.items()
        if v is not None
    }
    page = call(api, token, "GET", "/jobs", params=query)
    if as_json:
        typer.echo(json.dumps(page))
    else:
        table(page["items"])


@app.command()
def watch(
    job_id: str,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live until it ends; exit 0 if it succeeded, 1 otherwise."""
    status = "unknown"
    try:
        with (
            client(api, token) as http,
            http.stream(
                "GET", f"/jobs/{job_id}/stream", timeout=httpx.Timeout(15, read=None)
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
                fail(f"{response.status_code} {response.text}")
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if "type" not in event:
                    status = event.get("status", status)
                    break
                typer.echo(json.dumps(event) if as_json else _describe(event))
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {api}: {exc}")
    if not as_json:
        typer.echo(f"job {job_id} {status}")
    raise typer.Exit(0 if status == "succeeded" else 1)


def _describe(event: dict[str, Any]) -> str:
    keys = (
        "site",
        "rule",
        "reason",
        "attempt",
        "percent",
        "message",
        "error",
        "retry_at",
        "not_before",
        "worker",
    )
    extra = " ".join(f"{k}={event[k]}" for k in keys if event.get(k) not in (None, ""))
    return f"{event['occurred_at'][:23]}  {event['type']:16} {extra}"


@app.command()
def cancel(
    job_id: str,
    reason: str = "cancelled from the command line",
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Cancel a job that has not finished."""
    call(api, token, "POST", f"/jobs/{job_id}/cancel", json={"reason": reason})
    typer.echo(f"job {job_id} cancelled")
