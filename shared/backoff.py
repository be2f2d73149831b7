"""Retry backoff (contract 3.1): min(max, base * 2^(n-1)) times a jitter in [0.8, 1.2]."""

from __future__ import annotations

import random

_rng = random.Random()


def retry_delay(
    attempt: int,
    base_seconds: float,
    max_seconds: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt `attempt + 1`, after attempt `attempt` failed."""
    raw = min(max_seconds, base_seconds * 2.0 ** (attempt - 1))
    return raw * (rng or _rng).uniform(0.8, 1.2)
