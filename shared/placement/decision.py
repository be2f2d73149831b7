"""The placement decision: a pure function of (job, rules, private backlog), contract 4."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.contracts.jobs import DataClassification, JobSpec, Site
from shared.placement.rules import Rules


@dataclass(frozen=True)
class Placement:
    site: Site
    rule: str
    reason: str
    private_backlog: int | None = None


@dataclass(frozen=True)
class Refusal:
    reason: str
    field: str


Decision = Placement | Refusal
BacklogReading = Callable[[], int]


def _other(site: Site) -> Site:
    return Site.PUBLIC if site is Site.PRIVATE else Site.PRIVATE


def choose_site(job: JobSpec, rules: Rules, private_backlog: BacklogReading) -> Placement | Refusal:
    """Apply the rules in order: residency, explicit, job_type, burst, default."""
    confidential = job.data_classification is DataClassification.CONFIDENTIAL
    if confidential:
        if job.target_cloud is Site.PUBLIC:
            return Refusal(
                "residency: confidential data never leaves the private cloud, "
                "so target_cloud 'public' is refused",
                field="target_cloud",
            )
        return Placement(Site.PRIVATE, "residency", "confidential data stays on the private cloud")
    if job.target_cloud is not None:
        return Placement(
            job.target_cloud, "explicit", f"target_cloud {job.target_cloud.value!r} requested"
        )
    if (mapped := rules.job_types.get(job.job_type)) is not None:
        return Placement(
            mapped, "job_type", f"job type {job.job_type!r} runs on {mapped.value} by rule"
        )
    if job.data_classification in rules.burst.classifications:
        backlog = private_backlog()
        threshold = rules.burst.private_backlog_threshold
        if backlog > threshold:
            return Placement(
                Site.PUBLIC,
                "burst",
                f"private backlog {backlog} > {threshold}: burst to public",
                private_backlog=backlog,
            )
        return Placement(
            Site.PRIVATE,
            "default",
            f"private backlog {backlog} <= {threshold}: stays on private",
            private_backlog=backlog,
        )
    return Placement(Site.PRIVATE, "default", "private is the default site")


def place(job: JobSpec, rules: Rules, private_backlog: BacklogReading) -> Decision:
    """Choose a site, then make sure it has a handler for the job type.

    A site chosen by residency or an explicit target is binding; one chosen by a softer
    rule falls over to the other site when only that one knows the job type.
    """
    decision = choose_site(job, rules, private_backlog)
    if isinstance(decision, Refusal) or rules.can_run(decision.site, job.job_type):
        return decision
    other = _other(decision.site)
    binding = decision.rule in ("residency", "explicit")
    if not binding and rules.can_run(other, job.job_type):
        return Placement(
            other,
            decision.rule,
            f"{decision.reason}; but {decision.site.value} has no handler for "
            f"{job.job_type!r}, so {other.value}",
            decision.private_backlog,
        )
    return Refusal(_unrunnable(job, rules, decision.site if binding else None), "job_type")


def _unrunnable(job: JobSpec, rules: Rules, bound: Site | None) -> str:
    """Why no site runs the job: which sites the rules file lets run its type, and that
    the site it is bound to (or every site) has no handler registered for it."""
    allowed = sorted(s.value for s in rules.sites if rules.can_run(s, job.job_type))
    where = f"the {bound.value} site" if bound else "any site"
    cause = (
        f"the rules file lets only {', '.join(allowed)} run it"
        if allowed
        else "the rules file lets no site run it"
    )
    return (
        f"job type {job.job_type!r} cannot run on {where}: {cause}, and no handler is "
        f"registered for it there (add it to [sites.<site>].job_types in ROUTING_RULES "
        "and load its handler with HYBRIDQ_HANDLERS)"
    )
