"""Dead-letter commands: list and redrive."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hybridq_cli.app import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    TokenOption,
    call,
    table,
)
from hybridq_cli.app import dlq_app as dlq


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
    every: Annotated[
        bool, typer.Option("--all", metavar="", help="every dead letter (up to --limit)")
    ] = False,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-open dead-lettered jobs by id, by filter, or every one with --all."""
    body: dict[str, object] = {"all": True} if every else {}
    body |= {
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
