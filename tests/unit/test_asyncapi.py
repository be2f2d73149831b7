"""docs/asyncapi.yaml is generated from `shared/` and stays in step with it."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared import topology
from shared.asyncapi import document
from shared.contracts.events import EVENT_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_committed_document_matches_the_code() -> None:
    assert DOC.read_text() == document(), "run: make generated"


def _vhosts(value: object) -> list[object]:
    if isinstance(value, dict):
        own = [value["vhost"]] if "vhost" in value else []
        return own + [v for item in value.values() for v in _vhosts(item)]
    if isinstance(value, list):
        return [v for item in value for v in _vhosts(item)]
    return []


def test_bindings_name_the_vhost_as_rabbitmq_does() -> None:
    vhosts = _vhosts(yaml.safe_load(document()))
    assert vhosts
    assert set(vhosts) == {"hybridq"}


def test_every_contract_channel_and_message_is_documented() -> None:
    spec = yaml.safe_load(DOC.read_text())
    channels = spec["channels"]
    assert "jobs.intake:job.submitted" in channels
    for source in ("router", "public", "private", "status"):
        assert f"jobs.events:events.{source}" in channels  # event batches (contract §3.2)
    batch = spec["components"]["schemas"]["EventBatch"]
    assert batch["properties"]["schema_version"]["const"] == 2
    documented = spec["channels"]["jobs.status.events:consume"]["description"]
    for event in EVENT_TYPES:  # v1.1 single events, still taken during an upgrade
        assert f"`{event.routing_key}`" in documented
    for name in (
        "jobs.dispatch:public",
        "jobs.dispatch:private",
        "jobs.public:consume",
        "jobs.private:consume",
        "jobs.dead-letter:consume",
    ):
        assert name in channels
    schemas = spec["components"]["schemas"]
    assert set(schemas["JobSubmitted"]["required"]) == {"job_id", "job_type"}
    assert schemas["JobSubmitted"]["additionalProperties"] is False
    assert spec["channels"]["jobs.public:consume"]["bindings"]["amqp"]["queue"][
        "name"
    ] == topology.work_queue_name(topology.Site.PUBLIC)
