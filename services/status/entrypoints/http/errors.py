"""The one error body of the HTTP API, and the error answers each route declares.

Every answer that is not a success has the body `{"detail": str, "errors": [{"field",
"message"}]}`: `detail` says what went wrong in one sentence, `errors` names each field
at fault (empty when no field is: 404, 409, 503 ...). The validation handler, the route
refusals, the auth gate and the body limits all build it with `error_body`, and the
OpenAPI document declares it (`ErrorBody`) for every error status (openapi.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    """Where in the request: a dotted path into the body (`jobs.0.job_type`), a query
    parameter or path parameter's name, or `(body)` for the body as a whole."""
    message: str


class ErrorBody(BaseModel):
    """Every error answer's body."""

    model_config = ConfigDict(extra="forbid")

    detail: str
    errors: list[FieldError]


def error_body(detail: str, errors: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The error body as JSON-ready data: `errors` as (field, message) pairs."""
    return {"detail": detail, "errors": [{"field": f, "message": m} for f, m in errors]}


DESCRIPTIONS: dict[int, str] = {
    400: "the body cannot be read (not UTF-8 text)",
    401: "no valid bearer token (API_TOKEN or ADMIN_TOKEN)",
    403: "this action needs ADMIN_TOKEN",
    404: "no such resource",
    409: "conflicts with the resource's state",
    413: "request body too large",
    415: "the body is not sent as JSON (Content-Type: application/json)",
    422: "invalid request: `errors` names each field at fault",
    429: "too many requests of this kind open",
    503: "the database or broker did not answer; retry after `Retry-After` seconds",
}


def problems(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for these error statuses, each with ErrorBody; a
    keyword `_409="..."` gives a status its own description."""
    found = {int(key.lstrip("_")): text for key, text in described.items()}
    return {
        code: {"model": ErrorBody, "description": found.get(code, DESCRIPTIONS[code])}
        for code in sorted({*codes, *found})
    }
