"""Prometheus metrics of every service (served on METRICS_PORT, or /metrics of the API)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

ROUTER_OUTCOMES = Counter(
    "hybridq_router_messages_total",
    "Intake and due messages by outcome and rule",
    ["outcome", "rule"],
)
WORKER_ATTEMPTS = Counter(
    "hybridq_worker_attempts_total",
    "Job attempts by site, job type and outcome",
    ["site", "job_type", "outcome"],
)
WORKER_DURATION = Histogram(
    "hybridq_worker_attempt_seconds",
    "Duration of job attempts",
    ["site", "job_type", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
EVENTS_PROJECTED = Counter(
    "hybridq_status_events_projected_total", "Lifecycle events projected", ["type"]
)
EVENTS_DUPLICATE = Counter(
    "hybridq_status_events_duplicate_total", "Lifecycle events skipped as duplicates"
)
PROJECTION_LAG = Histogram(
    "hybridq_status_projection_lag_seconds",
    "Event time to commit time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
JOBS_BY_STATUS = Gauge("hybridq_jobs", "Jobs by status", ["status"], multiprocess_mode="mostrecent")
WRITE_SIDE_RESTARTS = Counter(
    "hybridq_status_write_side_restarts_total",
    "Times the status service started its write side again after it exited",
)
SCHEDULE_FIRINGS = Counter(
    "hybridq_schedule_firings_total",
    "Firings claimed by this process; `caught_up` when fire times were missed before it",
    ["kind"],
)
SCHEDULE_FIRING_LAG = Histogram(
    "hybridq_schedule_firing_lag_seconds",
    "Fire time to the moment the firing was claimed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600),
)
OUTBOX_PUBLISHED = Counter(
    "hybridq_outbox_published_total",
    "Messages the status service's outbox relay published, by what decided them",
    ["origin"],
)
API_LATENCY = Histogram(
    "hybridq_api_request_seconds", "HTTP API latency", ["method", "route", "code"]
)


def serve_metrics(port: int) -> None:
    start_http_server(port)
