"""Handler registration, module loading, results and child-job checks (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.contracts.jobs import DataClassification
from shared.errors import HandlerModuleError, InvalidResult, PermanentJobError
from shared.worker.children import child_job
from shared.worker.handlers import HandlerError, JobContext, Registry
from shared.worker.loading import load_handlers
from shared.worker.results import MAX_RESULT_BYTES, result_json


def test_a_module_that_does_not_import_is_named() -> None:
    with pytest.raises(HandlerModuleError, match=r"'tests\.handler_modules\.nope'"):
        load_handlers(["tests.handler_modules.sample", "tests.handler_modules.nope"])


def test_loaded_modules_register_on_the_module_registry_with_the_builtins() -> None:
    registry = load_handlers(["tests.handler_modules.sample"])
    assert {"noop", "transcode", "busy", "fan_out"} <= registry.job_types()
    assert registry.get("busy") is not None
    assert not registry.get("busy").on_loop  # type: ignore[union-attr]
    assert registry.get("fan_out").on_loop  # type: ignore[union-attr]


def test_a_job_type_registered_twice_stops_the_start_naming_both() -> None:
    with pytest.raises(HandlerModuleError) as refused:
        load_handlers(["tests.handler_modules.duplicate"])
    message = str(refused.value)
    assert "'noop' is registered twice" in message
    assert "shared.worker.builtins.noop" in message
    assert "tests.handler_modules.duplicate.my_noop" in message
    assert load_handlers([]).get("noop").handler.__module__ == "shared.worker.builtins"  # type: ignore[union-attr]


def test_registering_the_same_handler_again_is_no_duplicate() -> None:
    registry = Registry()
    for _ in range(2):
        registry.handler("noop")(noop_handler)
    assert registry.job_types() == {"noop"}


async def noop_handler(ctx: JobContext) -> dict[str, Any]:
    return {}


def test_a_plain_handler_must_be_importable_by_name() -> None:
    registry = Registry()

    with pytest.raises(HandlerError, match="module level"):

        @registry.handler("local")
        def local(ctx: JobContext) -> dict[str, Any]:
            return {}


@pytest.mark.parametrize("value", [[1], "text", {"x": float("nan")}, {"x": object()}])
def test_results_must_be_json_objects(value: object) -> None:
    with pytest.raises(InvalidResult):
        result_json(value)


def test_the_result_limit_is_64_kib_of_json() -> None:
    fits = {"d": "x" * (MAX_RESULT_BYTES - len('{"d":""}'))}
    assert len(result_json(fits)) == MAX_RESULT_BYTES
    with pytest.raises(InvalidResult, match="65537 bytes"):
        result_json({"d": fits["d"] + "x"})


def request(**fields: Any) -> dict[str, Any]:
    return {
        "job_id": "6f0f2a52-3b7e-4bd4-9b1c-0d3c8f3b3f11",
        "job_type": "noop",
        "params": {},
        "parent_id": "0b6a3c2e-6a43-4f0b-8d57-0c9f6b0e4d10",
        "data_classification": "internal",
        **fields,
    }


def test_a_confidential_parent_keeps_its_children_private() -> None:
    confidential = DataClassification.CONFIDENTIAL
    assert child_job(request(data_classification="confidential"), confidential).parent_id
    with pytest.raises(PermanentJobError, match="must be confidential"):
        child_job(request(data_classification="public"), confidential)


@pytest.mark.parametrize("fields", [{"job_type": "Bad Type"}, {"colour": "red"}])
def test_an_invalid_child_is_refused_in_the_handler(fields: dict[str, Any]) -> None:
    with pytest.raises(PermanentJobError, match="child job refused"):
        child_job(request(**fields), DataClassification.INTERNAL)
