"""The AsyncAPI document of every hybridq channel and message, built from `shared/`.

`python -m shared.asyncapi > docs/asyncapi.yaml` (`make asyncapi`); a test fails when the
committed document drifts from the code.
"""

from __future__ import annotations

from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from shared import topology
from shared.contracts import batches
from shared.contracts.batches import EventBatch
from shared.contracts.events import EVENT_TYPES
from shared.contracts.jobs import JobSubmitted, PlacedJob, Site
from shared.contracts.workers import AttemptLeased, AttemptReleased, WorkerHeartbeat

DESCRIPTION = """\
hybridq: a hybrid-cloud job scheduler over RabbitMQ. Clients publish JobSubmitted to
`jobs.intake` (routing key `job.submitted`); the router places each job on the public or
private site and publishes it to `jobs.dispatch` (routing key = site), which feeds the
`jobs.public` / `jobs.private` queues; every service publishes lifecycle events to
`jobs.events` several to a message (event batches `{"schema_version": 2, "events": [...]}`,
routing key `events.<source>`). Messages are JSON, persistent, mandatory, published with
confirms. What cannot be processed goes to the `jobs.dead-letter` queue (through the
`jobs.dlx` exchange) with `x-hybridq-reason` and `x-hybridq-source-queue` headers."""


SOURCES = (
    (batches.ROUTER_SOURCE, "the router (submitted, rejected, scheduled, routed)"),
    (
        Site.PUBLIC.value,
        "the public site's workers (started, progress, succeeded, failed, dead-lettered)",
    ),
    (
        Site.PRIVATE.value,
        "the private site's workers (started, progress, succeeded, failed, dead-lettered)",
    ),
    (
        batches.STATUS_SOURCE,
        "the status service (cancelled, redriven, and the endings it "
        "records for dead letters and lapsed leases)",
    ),
)


def build() -> AsyncAPI:
    broker = RabbitBroker("amqp://rabbitmq:5672/hybridq", description="RabbitMQ broker")
    broker.publisher(
        exchange=topology.INTAKE,
        routing_key=topology.SUBMITTED_KEY,
        schema=JobSubmitted,
        title=f"{topology.INTAKE.name}:{topology.SUBMITTED_KEY}",
        description="A client submits a job (or POST /jobs). Unknown fields are rejected.",
    )
    for source, who in SOURCES:
        key = batches.routing_key(source)
        broker.publisher(
            exchange=topology.EVENTS,
            routing_key=key,
            schema=EventBatch,
            title=f"{topology.EVENTS.name}:{key}",
            description=(
                f"Event batches from {who}: 1 to {batches.MAX_EVENTS} lifecycle events "
                "(discriminated by `type`), at most 1 MiB, persistent, confirmed, mandatory, "
                "with the publisher's `user_id`."
            ),
        )

    async def project(batch: EventBatch) -> None:
        """The status service projects every event; during an upgrade it also takes a
        v1.1 single event (one of the event schemas, routing key `job.<event>`)."""

    broker.subscriber(
        topology.STATUS_EVENTS,
        topology.EVENTS,
        title=f"{topology.STATUS_EVENTS.name}:consume",
        description=(
            f"Bound `{topology.EVENT_BATCHES_KEY}` (batches) and `{topology.V11_EVENTS_KEY}` "
            "(v1.1 single events: " + ", ".join(f"`{e.routing_key}`" for e in EVENT_TYPES) + ")."
        ),
    )(project)
    for message in (WorkerHeartbeat, AttemptLeased, AttemptReleased):
        broker.publisher(
            exchange=topology.EVENTS,
            routing_key=message.routing_key,
            schema=message,
            title=f"{topology.EVENTS.name}:{message.routing_key}",
            description=(message.__doc__ or message.__name__).strip(),
        )
    for site in Site:
        queue = topology.work_queue(site)
        broker.publisher(
            exchange=topology.DISPATCH,
            routing_key=site.value,
            schema=PlacedJob,
            title=f"{topology.DISPATCH.name}:{site.value}",
            description=f"A job placed on the {site.value} site, with the job's priority.",
        )

        async def run(job: PlacedJob) -> None:
            """A worker runs one attempt of the job."""

        broker.subscriber(
            queue,
            topology.DISPATCH,
            title=f"{queue.name}:consume",
            description=f"The {site.value} worker's queue.",
        )(run)

    async def follow(batch: EventBatch) -> None:
        """Every router and worker replays the cancellations kept, then follows them."""

    broker.subscriber(
        topology.CANCELLATIONS,
        topology.EVENTS,
        title=f"{topology.CANCELLATIONS.name}:consume",
        description=(
            f"A stream of the status service's event batches (`{topology.STATUS_EVENTS_KEY}`, "
            "whose JobCancelled events cancel; v1.1's `job.cancelled` too), kept "
            f"{topology.CANCELLATIONS_MAX_AGE}, replayed from the first at every start; "
            f"also holds `{topology.CANCELLATIONS_SYNC_KEY}` markers."
        ),
    )(follow)

    async def keep(body: bytes) -> None:
        """Dead letters wait here for operators; the status service keeps a copy."""

    broker.subscriber(
        topology.DEAD_LETTER_QUEUE,
        topology.DEAD_LETTER_EXCHANGE,
        title=f"{topology.DEAD_LETTER_QUEUE.name}:consume",
        description="Messages that could not be processed, reason in headers.",
    )(keep)
    return AsyncAPI(
        broker, title="hybridq", version="1", description=DESCRIPTION, schema_version="3.0.0"
    )


def _vhost_names(value: Any) -> Any:
    """Each AMQP binding's `vhost` as RabbitMQ names it (`hybridq`): FastStream copies the
    URL's path (`/hybridq`), and the slash is only the URL's separator."""
    if isinstance(value, dict):
        return {
            key: item.lstrip("/")
            if key == "vhost" and isinstance(item, str) and item != "/"
            else _vhost_names(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_vhost_names(item) for item in value]
    return value


def document() -> str:
    """The document as YAML with sorted keys: FastStream's own order follows set iteration,
    which changes between runs."""
    import yaml  # a development dependency, like this generator

    data = _vhost_names(build().to_specification().to_jsonable())
    return str(yaml.safe_dump(data, sort_keys=True, width=100, allow_unicode=True))


if __name__ == "__main__":
    print(document(), end="")
