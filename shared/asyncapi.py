"""The AsyncAPI document of every hybridq channel and message, built from `shared/`.

`python -m shared.asyncapi > docs/asyncapi.yaml` (`make asyncapi`); a test fails when the
committed document drifts from the code.
"""

from __future__ import annotations

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from shared import topology
from shared.contracts.events import EVENT_TYPES, JobCancelled
from shared.contracts.jobs import JobSubmitted, PlacedJob, Site
from shared.contracts.workers import AttemptLeased, AttemptReleased, WorkerHeartbeat

DESCRIPTION = """\
hybridq: a hybrid-cloud job scheduler over RabbitMQ. Clients publish JobSubmitted to
`jobs.intake` (routing key `job.submitted`); the router places each job on the public or
private site and publishes it to `jobs.dispatch` (routing key = site), which feeds the
`jobs.public` / `jobs.private` queues; every service publishes lifecycle events to
`jobs.events` with routing key `job.<event>`. Messages are JSON, persistent, published
with confirms. What cannot be processed goes to the `jobs.dead-letter` queue (through the
`jobs.dlx` exchange) with `x-hybridq-reason` and `x-hybridq-source-queue` headers."""


def build() -> AsyncAPI:
    broker = RabbitBroker("amqp://rabbitmq:5672/hybridq", description="RabbitMQ broker")
    broker.publisher(
        exchange=topology.INTAKE,
        routing_key=topology.SUBMITTED_KEY,
        schema=JobSubmitted,
        title=f"{topology.INTAKE.name}:{topology.SUBMITTED_KEY}",
        description="A client submits a job (or POST /jobs). Unknown fields are rejected.",
    )
    for event in EVENT_TYPES:
        broker.publisher(
            exchange=topology.EVENTS,
            routing_key=event.routing_key,
            schema=event,
            title=f"{topology.EVENTS.name}:{event.routing_key}",
            description=(event.__doc__ or event.__name__).strip(),
        )
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

    async def follow(event: JobCancelled) -> None:
        """Every router and worker replays the cancellations kept, then follows them."""

    broker.subscriber(
        topology.CANCELLATIONS,
        topology.EVENTS,
        title=f"{topology.CANCELLATIONS.name}:consume",
        description=(
            "A stream of `job.cancelled` events (kept "
            f"{topology.CANCELLATIONS_MAX_AGE}), replayed from the first at every start; "
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


def document() -> str:
    """The document as YAML with sorted keys: FastStream's own order follows set iteration,
    which changes between runs."""
    import yaml  # a development dependency, like this generator

    data = build().to_specification().to_jsonable()
    return str(yaml.safe_dump(data, sort_keys=True, width=100, allow_unicode=True))


if __name__ == "__main__":
    print(document(), end="")
