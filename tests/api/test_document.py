"""The OpenAPI document tells the truth about the running server (contract v1.2 §5): one
error body everywhere, the status codes each operation really answers, true media types,
security declared from the settings, and refusals the document itself says are invalid.

In memory, on the app the composition root builds (no request here reaches a backend)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.status.bootstrap import create_app
from services.status.domain.schedules import check_cron
from services.status.entrypoints.http.schedules import ScheduleRequest
from services.status.entrypoints.http.schemas import RedriveRequest
from shared.settings import StatusSettings


def _document(**tokens: str) -> dict[str, Any]:
    settings = StatusSettings(**{k: SecretStr(v) for k, v in tokens.items()})
    return create_app(settings).openapi()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _document()


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if "$ref" in value else set()
        for item in value.values():
            found |= _refs(item)
        return found
    if isinstance(value, list):
        return set().union(*map(_refs, value)) if value else set()
    return set()


def test_one_error_body_for_every_error_answer(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["detail", "errors"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if code.startswith(("4", "5")) and not path.startswith("/readyz"):
                    refs = _refs(answer)
                    assert refs == {"#/components/schemas/ErrorBody"}, (method, path, code)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("get", "/jobs/{job_id}", {"404", "422", "503"}),
        ("get", "/jobs/{job_id}/events", {"404", "503"}),
        ("post", "/jobs/{job_id}/cancel", {"404", "409", "503"}),
        ("get", "/schedules/{schedule_id}", {"404"}),
        ("patch", "/schedules/{schedule_id}", {"404", "415"}),
        ("delete", "/schedules/{schedule_id}", {"404"}),
        ("get", "/job-groups/{group_id}", {"404"}),
        ("get", "/readyz", {"503"}),
        ("post", "/jobs", {"413", "415", "422", "503"}),
        ("get", "/jobs/{job_id}/stream", {"429"}),
    ],
)
def test_every_status_an_operation_answers_is_listed(
    doc: dict[str, Any], method: str, path: str, codes: set[str]
) -> None:
    assert codes <= set(doc["paths"][path][method]["responses"])


def test_media_types(doc: dict[str, Any]) -> None:
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    stream = doc["paths"]["/jobs/{job_id}/stream"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert list(stream) == ["text/event-stream"]
    assert "503" not in doc["paths"]["/jobs/{job_id}/stream"]["get"]["responses"]


def test_security_only_when_a_token_is_set(doc: dict[str, Any]) -> None:
    assert "securitySchemes" not in doc["components"]
    assert all("security" not in op for ops in doc["paths"].values() for op in ops.values())
    assert all("401" not in op["responses"] for ops in doc["paths"].values() for op in ops.values())
    guarded = _document(API_TOKEN="r", ADMIN_TOKEN="a")
    assert guarded["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    jobs = guarded["paths"]["/jobs"]["get"]
    assert jobs["security"] == [{"bearer": []}]
    assert "401" in jobs["responses"]
    assert "403" not in jobs["responses"]
    cancel = guarded["paths"]["/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"401", "403"} <= set(cancel)
    for public in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in guarded["paths"][public]["get"]


def test_enums_in_the_document(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "cancelled" in schemas["JobStatus"]["enum"]
    assert schemas["Site"]["enum"] == ["public", "private"]
    assert schemas["DataClassification"]["enum"] == ["public", "internal", "confidential"]
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    assert "JobStatus" in str(params["status"]["schema"])
    assert "Site" in str(params["site"]["schema"])
    # the rules file's job types (services/router/rules.toml)
    assert "noop" in schemas["SubmitJob"]["properties"]["job_type"]["enum"]
    assert "0" not in schemas["SubmitJob"]["properties"]["job_type"]["enum"]


def test_schedule_needs_exactly_one_cadence(doc: dict[str, Any]) -> None:
    schema = doc["components"]["schemas"]["ScheduleRequest"]
    assert schema["oneOf"] == [{"required": ["cron"]}, {"required": ["every_seconds"]}]
    job = {"job_type": "noop"}
    with pytest.raises(ValueError, match="either cron or every_seconds"):
        ScheduleRequest.model_validate({"name": "n", "job": job})
    with pytest.raises(ValueError, match="either cron or every_seconds"):
        ScheduleRequest.model_validate(
            {"name": "n", "job": job, "cron": "* * * * *", "every_seconds": 5}
        )
    with pytest.raises(ValueError, match="rather than send null"):
        ScheduleRequest.model_validate({"name": "n", "job": job, "cron": None, "every_seconds": 5})
    assert ScheduleRequest.model_validate({"name": "n", "job": job, "every_seconds": 5})


@pytest.mark.parametrize("expr", ["5-1 * * * *", "0 0 1 * SAT-SUN", " * * * * *", "0"])
def test_cron_outside_the_documented_pattern_is_refused(expr: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        check_cron(expr)


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 9 * * MON-FRI", "30 2 1-15/2 JAN,jul *"])
def test_cron_in_the_pattern_is_taken(expr: str) -> None:
    assert check_cron(expr) == expr


@pytest.mark.parametrize(
    "body",
    [{}, {"limit": 5}, {"site": "public"}, {"all": False}, {"all": True, "reason": "x"}],
)
def test_redrive_needs_a_selection(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        RedriveRequest.model_validate(body)


def test_redrive_everything_only_when_asked() -> None:
    assert RedriveRequest.model_validate({"all": True}).all is True
    assert RedriveRequest.model_validate({"reason": "x"}).all is None


@pytest.fixture
async def http() -> Any:
    """The app without its lifespan: only answers that no backend is needed for."""
    app = create_app(StatusSettings())
    app.state.resources = object()  # never used: every request here is refused first
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"content-type": "application/x-www-form-urlencoded"}, b"job_type=noop"),
        ({"content-type": "text/plain"}, b'{"job_type": "noop"}'),
        ({}, b'{"job_type": "noop"}'),
    ],
)
async def test_a_body_that_is_not_json_is_415(
    http: httpx.AsyncClient, headers: dict[str, str], content: bytes
) -> None:
    answer = await http.post("/jobs", content=content, headers=headers)
    assert answer.status_code == 415, answer.text
    body = answer.json()
    assert "Content-Type: application/json" in body["detail"]
    assert body["errors"] == [{"field": "(body)", "message": body["detail"]}]


async def test_json_that_does_not_parse_is_one_clear_422(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/jobs", content=b"job_type=noop", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == "(body)"
    assert error["message"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("body", [b"{}", b""])
async def test_redrive_with_no_selection_is_422(http: httpx.AsyncClient, body: bytes) -> None:
    answer = await http.post(
        "/dead-letters/redrive", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"]


async def test_a_status_the_document_does_not_list_is_422(http: httpx.AsyncClient) -> None:
    answer = await http.get("/jobs", params={"status": ""})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "status"
