"""`hybridq submit-many FILE.jsonl`: one job a line, sent to `POST /jobs/batch` in chunks."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from hybridq_cli.app import DEFAULT_API, ApiOption, JsonOption, TokenOption, app, client, fail

CHUNK = 1000
"""Jobs per request: the most `POST /jobs/batch` takes."""
RETRIES = 3
"""Tries of a chunk the API answers 503 (the broker did not confirm in time): safe, each
job carries its job_id, so a job sent twice runs once."""


def _lines(path: str) -> Iterator[tuple[int, str]]:
    handle = sys.stdin if path == "-" else Path(path).open(encoding="utf-8")  # noqa: SIM115
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _job(line: str) -> dict[str, Any] | str:
    """The line's job with a job_id (one is made when it has none), or why it is no job."""
    try:
        job = json.loads(line)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(job, dict):
        return "not a JSON object"
    job.setdefault("job_id", str(uuid.uuid4()))
    return job


def _send(http: httpx.Client, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API's items for one chunk; a 503 is tried again, any other error ends it."""
    for attempt in range(1, RETRIES + 1):
        try:
            response = http.post("/jobs/batch", json={"jobs": jobs})
        except httpx.HTTPError as exc:
            fail(f"cannot reach the API at {http.base_url}: {exc}")
        if response.status_code == 503 and attempt < RETRIES:
            time.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.status_code != 202:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            fail(f"{response.status_code} {detail}")
        items: list[dict[str, Any]] = response.json()["items"]
        return items
    raise AssertionError("unreachable")  # pragma: no cover


def _report(number: int, outcome: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"line": number, **outcome}))
    elif outcome["status"] == "submitted":
        typer.echo(f"line {number}: {outcome['job_id']} submitted")
    else:
        errors = "; ".join(f"{e['field']}: {e['message']}" for e in outcome["errors"])
        typer.echo(f"line {number}: rejected ({errors})")


@app.command("submit-many")
def submit_many(
    file: Annotated[str, typer.Argument(help="JSON Lines: one job a line (`-`: stdin)")],
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit every job of a JSON Lines file (each line what `hybridq submit` sends, a
    job_id made for a line without one), 1,000 a request; prints each line's job_id or
    why it was refused. Exit 1 if any line was refused."""
    submitted = refused = 0
    try:
        lines = list(_lines(file))
    except OSError as exc:
        fail(f"cannot read {file}: {exc}", 2)
    except UnicodeDecodeError as exc:
        fail(f"{file} is not UTF-8 text: {exc}", 2)
    with client(api, token) as http:
        for start in range(0, len(lines), CHUNK):
            chunk = lines[start : start + CHUNK]
            parsed = [(number, _job(line)) for number, line in chunk]
            jobs = [job for _, job in parsed if isinstance(job, dict)]
            answers = iter(_send(http, jobs) if jobs else [])
            for number, job in parsed:
                if isinstance(job, str):
                    outcome: dict[str, Any] = {
                        "status": "rejected",
                        "errors": [{"field": "(line)", "message": job}],
                    }
                else:
                    outcome = next(answers)
                    outcome.pop("index", None)
                if outcome["status"] == "submitted":
                    submitted += 1
                else:
                    refused += 1
                _report(number, outcome, as_json)
    if not as_json:
        typer.echo(f"{submitted} submitted, {refused} refused")
    raise typer.Exit(1 if refused else 0)
