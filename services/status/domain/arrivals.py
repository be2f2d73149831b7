"""An event as it reaches the projection, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.contracts.events import AnyEvent
from shared.contracts.jobs import Site
from shared.identity import Speaker


class Outcome(StrEnum):
    """What became of one event handed to the projection."""

    PROJECTED = "projected"
    DUPLICATE = "duplicate"
    FORBIDDEN = "forbidden"  # its publisher may not report it: dead-lettered


UNRESTRICTED = Speaker()
"""A publisher that is no worker's user (router, status, an operator)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """An event and who published it (from the message's validated `user_id`)."""

    event: AnyEvent
    speaker: Speaker = UNRESTRICTED

    def forbidden(self, job_site: Site | None) -> bool:
        """Whether its publisher may not report it on a job of `job_site` (contract §3.2:
        shared.identity holds the one rule every service applies)."""
        return not self.speaker.may_report(self.event, job_site)
