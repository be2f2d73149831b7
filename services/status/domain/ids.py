"""Every deterministic id the status service makes: the same decision, made again by any
replica or after any restart, gives the same id, so its second publication is a duplicate
(the router's de-duplication, the projection's `event_id`)."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5


def cancel_event_id(job_id: UUID) -> UUID:
    """One JobCancelled per job: a retried cancel is a duplicate, not a second event."""
    return uuid5(NAMESPACE_URL, f"hybridq:cancel:{job_id}")


def redriven_event_id(dead_letter_id: str) -> UUID:
    """One JobRedriven per dead letter, whoever publishes it and however often."""
    return uuid5(NAMESPACE_URL, f"hybridq:redrive:{dead_letter_id}")


def compensation_job_id(group_id: UUID, member: UUID) -> UUID:
    """Deterministic, so a re-submitted compensation is a duplicate the router skips."""
    return uuid5(NAMESPACE_URL, f"hybridq:group:{group_id}:compensate:{member}")


def lease_interrupted_event_id(job_id: UUID, attempt: int) -> UUID:
    """The JobFailed of an attempt whose lease lapsed: one, whichever replica sweeps it."""
    return uuid5(NAMESPACE_URL, f"hybridq:{job_id}:{attempt}:lease")
