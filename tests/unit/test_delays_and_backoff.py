"""Delay tiers and retry backoff."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shared import topology
from shared.backoff import retry_delay


@given(st.floats(min_value=0.1, max_value=604_800))
def test_tier_hops_never_overshoot_and_stay_few(delay: float) -> None:
    remaining, hops = delay, 0
    while remaining >= 0.1:
        tier = topology.tier_for(remaining)
        assert tier.ttl_ms / 1000 <= remaining
        remaining -= tier.ttl_ms / 1000
        hops += 1
    assert hops <= topology.DELAY_TIER_COUNT
    assert 0 <= remaining < 0.1


def test_tiers_cover_seven_days_with_unique_names() -> None:
    names = [t.name for t in topology.DELAY_TIERS]
    assert len(set(names)) == len(names)
    assert sum(t.ttl_ms for t in topology.DELAY_TIERS) / 1000 > 604_800
    queue = topology.DELAY_TIERS[3].queue
    assert queue.arguments == {
        "x-queue-type": "quorum",  # at-least-once dead-lettering into jobs.router.due
        "x-message-ttl": 800,
        "x-dead-letter-exchange": "jobs.delay",
        "x-dead-letter-routing-key": "due",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": 5,
    }


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, raw in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 300), (20, 300)]:
        for _ in range(50):
            assert 0.8 * raw <= retry_delay(attempt, 1, 300, rng) <= 1.2 * raw
