"""`hybridq`: the command line for people at a terminal; it talks to the HTTP API."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import httpx
import typer

app = typer.Typer(
    help="Submit, inspect and operate hybridq jobs.", no_args_is_help=True, add_completion=False
)
dlq = typer.Typer(help="Dead letters: list and redrive.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")

ApiOption = Annotated[str, typer.Option("--api", envvar="HYBRIDQ_API", help="status API URL")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="HYBRIDQ_TOKEN", help="bearer token")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
DEFAULT_API = "http://127.0.0.1:8000"
COLUMNS = ("job_id", "job_type", "status", "site", "rule", "attempts", "submitted_at")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"hybridq: {message}", err=True)
    raise typer.Exit(code)


def client(api: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api, headers=headers, timeout=15)


def call(api: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with client(api, token) as http:
            response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {api}: {exc}")
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail", body)
            errors = body.get("errors") or []
        except ValueError:
            detail, errors = response.text, []
        extra = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        fail(f"{response.status_code} {detail}{' (' + extra + ')' if extra else ''}")
    return response.json()


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def table(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c) or "")) for r in rows)]) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row.get(c) or "").ljust(widths[c]) for c in columns))


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
    watch_it: Annotated[bool, typer.Option("--watch", help="follow it until it ends")] = False,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job; prints its job_id."""
    params: dict[str, Any] = {}
    for item in param or []:
        key, sep, raw = item.partition("=")
        if not sep:
            fail(f"--param {item!r} is not k=v", 2)
        params[key] = _value(raw)
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
    """Show one job."""
    view = call(api, token, "GET", f"/jobs/{job_id}")
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    for key, value in view.items():
        if value is not None:
            typer.echo(f"{key:20} {json.dumps(value) if isinstance(value, dict) else value}")


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


@dlq.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead letters not yet redriven, newest first."""
    page = call(api, token, "GET", "/dead-letters", params={"limit": limit})
    if as_json:
        typer.echo(json.dumps(page))
    else:
        table(page["items"], ("id", "job_id", "reason", "source_queue", "dead_lettered_at"))


@dlq.command("redrive")
def dlq_redrive(
    ids: Annotated[list[str] | None, typer.Argument(help="dead letter ids")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    job_type: Annotated[str | None, typer.Option("--job-type")] = None,
    site: Annotated[str | None, typer.Option(help="re-place on this site")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-open dead-lettered jobs by id, or by filter."""
    body = {
        k: v
        for k, v in {
            "ids": ids or None,
            "reason": reason,
            "job_type": job_type,
            "site": site,
            "limit": limit,
        }.items()
        if v is not None
    }
    answer = call(api, token, "POST", "/dead-letters/redrive", json=body)
    if as_json:
        typer.echo(json.dumps(answer))
        return
    typer.echo(f"redriven: {answer['redriven']}")
    for skipped in answer.get("skipped", []):
        typer.echo(f"skipped {skipped['id']}: {skipped['why']}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
