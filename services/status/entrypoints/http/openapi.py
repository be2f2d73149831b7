"""The OpenAPI document (`/openapi.json`, `/docs`) as the running server answers.

FastAPI writes it from the routes and their models; this completes it with what the
routes alone do not say, from the same code and settings that make the answers:

- every error answer's body is `ErrorBody` (errors.py): FastAPI's own validation error
  schema, which the server never sends, is replaced;
- an operation with a request body can answer 400 (bytes that are not text), 413
  (limits.py), 415 (not JSON) and 422;
- an operation that reads the database or the broker can answer 503 (a stream's trouble
  ends the stream instead);
- bearer auth is declared on every protected operation when a token is set (with 401,
  and 403 for the operator actions), and nowhere when none is (auth.py);
- a job's `job_type` lists the types the rules file lets some site run, and residency
  and explicit targets narrow them as placement does (shared/placement).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from services.status.entrypoints.http.auth import is_public, require_admin, tokens
from services.status.entrypoints.http.deps import resources
from services.status.entrypoints.http.errors import DESCRIPTIONS, ErrorBody
from shared.contracts.jobs import DataClassification, Site
from shared.placement.rules import Rules, load_rules
from shared.settings import StatusSettings

ERROR_REF = "#/components/schemas/ErrorBody"
FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
JOB_MODELS = ("SubmitJob", "GroupJob", "JobSpec")
"""The request models that describe a job the router places (their `job_type` follows the
rules file)."""
BEARER = "bearer"


def install(app: FastAPI, settings: StatusSettings) -> None:
    """Serve `document(...)` as the app's OpenAPI document (made once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, settings, load_rules(settings.routing_rules))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, settings: StatusSettings, rules: Rules) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_ERRORS:
        schemas.pop(name, None)
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorBody"] = error
    protected = any(tokens(settings))
    if protected:
        schemas_security = doc["components"].setdefault("securitySchemes", {})
        schemas_security[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "description": "API_TOKEN or ADMIN_TOKEN (operator actions: ADMIN_TOKEN)",
        }
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = doc["paths"].get(context.path_format or "", {})
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods or ():
            if (operation := path.get(method.lower())) is not None:
                _complete(operation, route, context.path_format or "", protected)
    for name in JOB_MODELS:
        _job_policy(schemas[name], rules)
    return doc


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _error(code: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def _complete(operation: dict[str, Any], route: APIRoute, path: str, protected: bool) -> None:
    answers: dict[str, Any] = operation["responses"]
    for answer in answers.values():  # FastAPI's 422 -> the body really sent
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref", "").rsplit("/", 1)[-1] in FASTAPI_ERRORS:
            schema["$ref"] = ERROR_REF
            answer["description"] = DESCRIPTIONS[422]
    calls = set(_calls(route.dependant))
    codes: list[int] = []
    if "requestBody" in operation:
        codes += [400, 413, 415, 422]
    success: dict[str, Any] = next((a for c, a in answers.items() if c.startswith("2")), {})
    streams = "text/event-stream" in success.get("content", {})
    if resources in calls and not streams:
        codes.append(503)
    if protected and not is_public(path):
        operation["security"] = [{BEARER: []}]
        codes.append(401)
        if require_admin in calls:
            codes.append(403)
    for code in codes:
        answers.setdefault(str(code), _error(code))
    operation["responses"] = dict(sorted(answers.items()))


def _types(rules: Rules, site: Site | None = None) -> dict[str, Any]:
    """`job_type` as one of the types `site` (any site when None) may run."""
    sites = [site] if site else list(rules.sites)
    names = sorted({t for s in sites if s in rules.sites for t in rules.sites[s].job_types})
    return {"enum": names} if names else {"not": {}}


def _when(field: str, value: str, then: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {field: {"const": value}}, "required": [field]},
        "then": {"properties": then},
    }


def _job_policy(model: dict[str, Any], rules: Rules) -> None:
    """What placement refuses (shared/placement/decision.py `place`), in the schema: a type
    no site can run; a type the site a job is bound to cannot run (an explicit
    `target_cloud`, or residency for confidential data, which also refuses `public`)."""
    model["properties"]["job_type"].update(_types(rules))
    confidential = DataClassification.CONFIDENTIAL.value
    model["allOf"] = [
        *model.get("allOf", []),
        *(_when("target_cloud", site.value, {"job_type": _types(rules, site)}) for site in Site),
        _when(
            "data_classification",
            confidential,
            {
                "job_type": _types(rules, Site.PRIVATE),
                "target_cloud": {"not": {"const": Site.PUBLIC.value}},
            },
        ),
    ]
