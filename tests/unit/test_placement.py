"""The placement decision, rule by rule and in order (contract section 4)."""

from __future__ import annotations

import pytest

from shared.contracts.jobs import JobSpec, Site
from shared.placement.decision import Placement, Refusal, place
from shared.placement.rules import BurstRules, Rules, SiteRules

ALL = frozenset({"noop", "8k_transcode", "render"})
RULES = Rules(
    burst=BurstRules(private_backlog_threshold=100),
    job_types={"8k_transcode": "public"},  # type: ignore[dict-item]
    sites={
        "public": SiteRules(job_types=ALL),  # type: ignore[dict-item]
        "private": SiteRules(job_types=ALL | {"ledger"}),
    },
)

CASES = [
    # (job fields, private backlog, expected site, rule) -- None site means refused
    ({"data_classification": "confidential"}, 0, "private", "residency"),
    (
        {"data_classification": "confidential", "job_type": "8k_transcode"},
        500,
        "private",
        "residency",
    ),
    ({"data_classification": "confidential", "target_cloud": "private"}, 0, "private", "residency"),
    ({"data_classification": "confidential", "target_cloud": "public"}, 0, None, "target_cloud"),
    ({"target_cloud": "public"}, 0, "public", "explicit"),
    ({"target_cloud": "private", "job_type": "8k_transcode"}, 500, "private", "explicit"),
    ({"job_type": "8k_transcode"}, 0, "public", "job_type"),
    ({}, 101, "public", "burst"),
    ({"data_classification": "public"}, 150, "public", "burst"),
    ({}, 100, "private", "default"),
    ({}, 0, "private", "default"),
    ({"job_type": "ledger"}, 500, "private", "burst"),  # only private can run it
    ({"job_type": "ledger", "target_cloud": "public"}, 0, None, "job_type"),
    ({"job_type": "unheard_of"}, 0, None, "job_type"),
]


@pytest.mark.parametrize(("fields", "backlog", "site", "rule"), CASES)
def test_rules_apply_in_contract_order(
    fields: dict[str, str], backlog: int, site: str | None, rule: str
) -> None:
    job = JobSpec.model_validate({"job_type": "noop", **fields})
    decision = place(job, RULES, lambda: backlog)
    if site is None:
        assert isinstance(decision, Refusal)
        assert decision.field == rule
    else:
        assert isinstance(decision, Placement)
        assert (decision.site.value, decision.rule) == (site, rule)
        assert decision.reason


def test_burst_reason_names_the_backlog_and_threshold() -> None:
    decision = place(JobSpec(job_type="noop"), RULES, lambda: 143)
    assert isinstance(decision, Placement)
    assert decision.reason == "private backlog 143 > 100: burst to public"
    assert decision.private_backlog == 143


def test_backlog_is_not_read_when_an_earlier_rule_decides() -> None:
    def boom() -> int:
        raise AssertionError("backlog read")

    place(JobSpec(job_type="noop", target_cloud="public"), RULES, boom)  # type: ignore[arg-type]


def test_classifications_outside_the_burst_list_never_burst() -> None:
    rules = RULES.model_copy(update={"burst": BurstRules(classifications=frozenset())})
    decision = place(JobSpec(job_type="noop"), rules, lambda: 10_000)
    assert isinstance(decision, Placement)
    assert (decision.site.value, decision.rule) == ("private", "default")


def test_an_unknown_job_type_is_refused_naming_the_rules_file_and_the_handlers() -> None:
    refused = place(JobSpec(job_type="x"), RULES, lambda: 0)
    assert isinstance(refused, Refusal)
    assert refused.field == "job_type"
    assert "no site has" not in refused.reason  # no double negative
    assert refused.reason.startswith("job type 'x' cannot run on any site")
    assert "the rules file lets no site run it" in refused.reason
    assert "no handler is registered for it" in refused.reason
    assert "ROUTING_RULES" in refused.reason


def test_a_type_bound_to_a_site_that_lacks_it_names_the_sites_that_have_it() -> None:
    rules = Rules(
        sites={
            Site.PUBLIC: SiteRules(job_types=frozenset()),
            Site.PRIVATE: SiteRules(job_types=frozenset({"y"})),
        }
    )
    refused = place(JobSpec(job_type="y", target_cloud=Site.PUBLIC), rules, lambda: 0)
    assert isinstance(refused, Refusal)
    assert "cannot run on the public site" in refused.reason
    assert "the rules file lets only private run it" in refused.reason
