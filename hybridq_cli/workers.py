"""`hybridq workers`: the live worker fleet."""

from __future__ import annotations

import json

import typer

from hybridq_cli.app import DEFAULT_API, ApiOption, JsonOption, TokenOption, app, call


@app.command()
def workers(
    api: ApiOption = DEFAULT_API, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List the workers heard from recently: site, job types, concurrency, running jobs."""
    page = call(api, token, "GET", "/workers")
    if as_json:
        typer.echo(json.dumps(page))
        return
    typer.echo(f"{'WORKER':28}  {'SITE':7}  {'RUNNING':>7}  {'LAST SEEN':32}  JOB TYPES")
    for w in page["items"]:
        busy = f"{len(w['running'])}/{w['concurrency']}"
        typer.echo(
            f"{w['worker']:28}  {w['site']:7}  {busy:>7}  {w['last_seen']:32}  "
            f"{', '.join(w['job_types'])}"
        )
