"""Which site a broker user may speak for (contract section 3.2).

Every hybridq publish carries the AMQP `user_id` property, and RabbitMQ refuses a
message whose `user_id` is not the connection's user, so a consumer can trust it. A
worker's user speaks only for its own site: its events, its retries and hand-backs are
about jobs of that site. Any other user (router, status service, an operator, `guest` in
development) is not restricted here: the broker's permissions already decide what such a
user may publish at all. A message without `user_id` may speak for no site, since
RabbitMQ validates the property only when it is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.contracts.events import (
    Event,
    JobCancelled,
    JobDeadLettered,
    JobFailed,
    JobProgress,
    JobRedriven,
    JobRejected,
    JobRouted,
    JobScheduled,
    JobStarted,
    JobSubmittedEvent,
    JobSucceeded,
)
from shared.contracts.jobs import Site

if TYPE_CHECKING:
    from shared.settings import BrokerSettings

PUBLIC_WORKER_USER = "hybridq-public-worker"
PRIVATE_WORKER_USER = "hybridq-private-worker"


@dataclass(frozen=True)
class WorkerUsers:
    """The broker users of the two worker fleets (settings PUBLIC_WORKER_USER and
    PRIVATE_WORKER_USER; defaults: the users of deploy/rabbitmq/definitions.json)."""

    public: str = PUBLIC_WORKER_USER
    private: str = PRIVATE_WORKER_USER

    @classmethod
    def from_settings(cls, settings: BrokerSettings) -> WorkerUsers:
        return cls(settings.public_worker_user, settings.private_worker_user)

    def site_of(self, user_id: str | None) -> Site | None:
        """The one site `user_id` may speak for, or None when it is not a worker's user."""
        if user_id == self.public:
            return Site.PUBLIC
        if user_id == self.private:
            return Site.PRIVATE
        return None

    def may_speak_for(self, user_id: str | None, site: Site) -> bool:
        """Whether a message published by `user_id` may be about a job of `site`.

        A message without `user_id` may not: RabbitMQ checks the property only when it is
        set, so anyone (a worker included) could leave it out. Every hybridq service sets
        it (shared/bus.py); `guest` in development is an unknown user, so unrestricted."""
        if user_id is None:
            return False
        own = self.site_of(user_id)
        return own is None or own is site

    def is_worker(self, user_id: str | None) -> bool:
        return self.site_of(user_id) is not None

    def speaker(self, user_id: str | None) -> Speaker:
        """Who published a message on `jobs.events`, as far as a consumer may trust it."""
        return Speaker(self.site_of(user_id), anonymous=user_id is None)


@dataclass(frozen=True)
class Speaker:
    """The publisher of a message, as its validated `user_id` tells: a worker's user speaks
    only for `site`; `anonymous` (no `user_id`) means RabbitMQ validated nothing, so the
    message may be anyone's, a worker's included."""

    site: Site | None = None
    anonymous: bool = False

    def may_report(self, event: Event, job_site: Site | str | None) -> bool:
        """Whether `event` from this publisher may be applied to a job placed on `job_site`
        (None: not known yet).

        A worker's user may report only WORKER_EVENTS, only for its own site (the event's
        `site` field, where it has one, and the job's). A worker event without `user_id`
        is refused: the property is validated only when present, and workers may publish
        worker events. Other events are bounded by the topic permissions (no worker may
        publish them): refused only from a worker's user."""
        if not isinstance(event, WORKER_EVENTS):
            return self.site is None
        if self.anonymous:
            return False
        if self.site is None:
            return True
        claimed = getattr(event, "site", None)
        return all(s in (None, self.site.value) for s in (_value(claimed), _value(job_site)))


def _value(site: Site | str | None) -> str | None:
    return site.value if isinstance(site, Site) else site


# -- which service owns which fact (contract section 3.2) --------------------------------
WORKER_EVENTS: tuple[type[Event], ...] = (
    JobStarted,
    JobProgress,
    JobSucceeded,
    JobFailed,
    JobDeadLettered,
)
"""All a worker reports; a worker's user may publish no other event (topic permissions)."""
ROUTER_EVENTS: tuple[type[Event], ...] = (
    JobSubmittedEvent,
    JobRejected,
    JobScheduled,
    JobRouted,
    JobDeadLettered,
)
STATUS_EVENTS: tuple[type[Event], ...] = (JobCancelled, JobRedriven, JobRejected, JobDeadLettered)
"""Operator actions (cancel, redrive), and the terminal event of a dead letter."""
