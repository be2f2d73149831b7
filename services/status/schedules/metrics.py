"""Prometheus metrics of the schedule firer (served by the status API's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FIRINGS = Counter(
    "hybridq_schedule_firings_total",
    "Firings claimed by this process; `caught_up` when fire times were missed before it",
    ["kind"],
)
FIRING_LAG = Histogram(
    "hybridq_schedule_firing_lag_seconds",
    "Fire time to the moment the firing was claimed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600),
)
PUBLISHED = Counter("hybridq_schedule_jobs_published_total", "Fired jobs published to jobs.intake")
