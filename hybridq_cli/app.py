"""The command groups, their shared options, and the HTTP plumbing under every command."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import httpx
import typer

app = typer.Typer(
    help="Submit, inspect and operate hybridq jobs.", no_args_is_help=True, add_completion=False
)
dlq_app = typer.Typer(help="Dead letters: list and redrive.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

ApiOption = Annotated[str, typer.Option("--api", envvar="HYBRIDQ_API", help="status API URL")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="HYBRIDQ_TOKEN", help="bearer token")
]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="machine-readable output")]
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
        fail(f"{response.status_code} {error_line(str(detail), errors)}")
    return response.json() if response.content else None  # 204: no body


def error_line(detail: str, errors: list[dict[str, Any]]) -> str:
    """The API's error body as one line, each message once: `detail` is often one
    field's message already (`residency: ...` and `target_cloud: residency: ...`)."""
    fields = [f"{e.get('field')}: {e.get('message')}" for e in errors]
    if len(errors) == 1 and errors[0].get("message") == detail:
        return fields[0]
    return "; ".join(fields) if fields else detail


def parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """`--param k=v` options as a params object (v read as JSON when it is JSON)."""
    params: dict[str, Any] = {}
    for item in pairs or []:
        key, sep, raw = item.partition("=")
        if not sep:
            fail(f"--param {item!r} is not k=v", 2)
        params[key] = parse_value(raw)
    return params


def table(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c) or "")) for r in rows)]) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row.get(c) or "").ljust(widths[c]) for c in columns))
