"""Issue 23: what an operator reaches for first (contract v1.2 §5.1), in headless Chromium
against the real stack: find a job by (a prefix of) its id from any page, times with date
and zone, queue wait and run time per job, percentiles by job type over a chosen time
range, rejected jobs on the overview, several dead letters redriven at once."""

from __future__ import annotations

import re
import statistics
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import Stack
from shared.contracts import events as ev
from tests.e2e.client import events, wait_for
from tests.integration.store_helpers import apply_events
from tests.ui.conftest import low_contrast, screenshot

pytestmark = pytest.mark.connected

DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")
WAITS = [float(i) for i in range(1, 11)]  # seeded: queue waits 1..10 s, run times 2..20 s


def shown(seconds: float) -> str:
    """How the dashboard writes a duration (dom.js `duration`) for 1 s to 60 s."""
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _submit(stack: Stack, **job: object) -> str:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post("/jobs", json=job)
        response.raise_for_status()
        job_id: str = response.json()["job_id"]
        return job_id


def _story(job_type: str, submitted: datetime, wait: float, run: float) -> list[ev.Event]:
    job_id = uuid.uuid4()
    started = submitted + timedelta(seconds=wait)
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type=job_type, occurred_at=submitted),
        ev.JobRouted(
            job_id=job_id,
            site="public",
            rule="r",
            reason="seeded",
            priority=5,
            occurred_at=submitted + timedelta(milliseconds=1),
        ),
        ev.JobStarted(job_id=job_id, site="public", attempt=1, worker="w", occurred_at=started),
        ev.JobSucceeded(
            job_id=job_id,
            site="public",
            attempt=1,
            duration_seconds=run,
            occurred_at=started + timedelta(seconds=run),
        ),
    ]


async def test_a_job_is_found_by_its_id_or_the_start_of_it_from_any_page(
    page: Page, stack: Stack
) -> None:
    head = uuid.uuid4().hex[:6]
    twins = [str(uuid.UUID(f"{head}0{n}{uuid.uuid4().hex[8:]}")) for n in (1, 2)]
    for job_id in twins:
        await _submit(stack, job_type="noop", job_id=job_id)
    for job_id in twins:
        await wait_for(stack.api, job_id)
    search = page.get_by_role("search").get_by_label("Job id")

    # from the dead letters page, the first 8 digits of one: its page
    await page.goto(f"{stack.api}/ui#/dead-letters")
    await search.fill(twins[0][:8])
    await search.press("Enter")
    await expect(page).to_have_url(re.compile(f"#/jobs/{twins[0]}$"))
    await expect(page.locator(".headline .mono")).to_have_text(twins[0])
    await expect(page.get_by_test_id("queue-wait")).to_have_text(re.compile(r"\d( ms| s)$"))
    await expect(page.get_by_test_id("run-time")).to_have_text(re.compile(r"\d( ms| s)$"))
    submitted = page.locator(".facts time").first
    await expect(submitted).to_have_text(DATED)

    # the digits both share: the list of exactly those two
    await search.fill(head.upper() + "0")
    await search.press("Enter")
    await expect(page).to_have_url(re.compile(rf"#/jobs\?job_id_prefix={head}0$"))
    rows = page.locator("table[data-testid=jobs] tbody tr")
    await expect(rows).to_have_count(2)
    assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == set(twins)
    await expect(page.get_by_test_id("prefix-note")).to_contain_text(f"{head}0")
    await expect(rows.first.locator("time").first).to_have_text(DATED)
    await screenshot(page, "jobs-by-id-prefix")
    assert await low_contrast(page) == []

    # a whole id, with dashes, opens the job at once
    await search.fill(twins[1])
    await search.press("Enter")
    await expect(page.locator(".headline .mono")).to_have_text(twins[1])

    # something no id starts with: said so, nothing else happens
    await search.fill("3fa8-5f")
    await search.press("Enter")
    await expect(page.get_by_role("status").first).to_contain_text("Not a job id")
    await expect(page.locator(".headline .mono")).to_have_text(twins[1])


async def test_the_overview_shows_percentiles_by_job_type_over_the_chosen_range(
    page: Page, stack: Stack
) -> None:
    job_type = f"timed-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(minutes=25)
    stories = [
        _story(job_type, start + timedelta(seconds=30 * i), w, 2 * w) for i, w in enumerate(WAITS)
    ]
    rejected = uuid.uuid4()
    stories.append(
        [
            ev.JobSubmittedEvent(job_id=rejected, job_type=job_type, occurred_at=start),
            ev.JobRejected(
                job_id=rejected, reason="seeded", occurred_at=start + timedelta(seconds=1)
            ),
        ]
    )
    engine = create_async_engine(stack.env["DATABASE_URL"])
    try:
        for story in stories:
            await apply_events(engine, story)
    finally:
        await engine.dispose()

    await page.goto(f"{stack.api}/ui")
    # rejected jobs are counted on the overview, on the card of jobs no site has
    await expect(page.get_by_test_id("rejected-total")).not_to_have_text("0")
    await expect(page.get_by_test_id("count-unplaced-rejected")).not_to_have_text("0")
    queues = page.get_by_role("region", name="Queues")
    await expect(queues.locator("th")).not_to_have_count(0)
    assert "Unacked" not in await queues.inner_text()

    # the last 15 minutes: the seeded jobs all finished before
    row = page.locator(f'table[data-testid=timings] tr[data-job-type="{job_type}"]')
    await expect(page.locator("table[data-testid=timings]")).to_be_visible()
    await expect(row).to_have_count(0)
    await page.get_by_label("Time range").select_option(label="Last hour")
    await expect(page).to_have_url(re.compile(r"#/\?range=1h$"))
    await expect(row.get_by_test_id("finished")).to_have_text("11")
    await expect(row.get_by_test_id("failed")).to_have_text("1")
    runs = [2 * w for w in WAITS]
    for q in ("p50", "p95", "p99"):
        level = int(q[1:]) / 100
        await expect(row.get_by_test_id(f"queue_wait-{q}")).to_have_text(
            shown(percentile(WAITS, level))
        )
        await expect(row.get_by_test_id(f"run_time-{q}")).to_have_text(
            shown(percentile(runs, level))
        )
    summary = page.get_by_test_id("chart-summary")
    await expect(summary).to_contain_text(re.compile(r"^Last hour: \d+ succeeded"))
    assert await page.locator("svg.chart rect.ok").count() > 0
    await screenshot(page, "overview-timings")
    assert await low_contrast(page) == []

    # the job list shows each one's queue wait and run time
    await page.goto(f"{stack.api}/ui#/jobs?job_type={job_type}")
    waits = page.locator("table[data-testid=jobs] tbody tr [data-testid=queue-wait]")
    await expect(waits).to_have_count(11)
    assert sorted(await waits.all_inner_texts()) == sorted([shown(w) for w in WAITS] + ["—"])


async def test_several_dead_letters_are_redriven_at_once_and_no_others(
    page: Page, stack: Stack
) -> None:
    ids = [
        await _submit(stack, job_type="flaky", params={"fail_times": 1}, max_attempts=1)
        for _ in range(3)
    ]
    for job_id in ids:
        await wait_for(stack.api, job_id, {"dead_lettered"})
    chosen, left = ids[:2], ids[2]
    await page.goto(f"{stack.api}/ui#/dead-letters")
    for job_id in ids:
        await expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(1)
    for job_id in chosen:
        await page.get_by_role("checkbox", name=f"Select job {job_id}").check()
    await expect(page.get_by_test_id("selected-count")).to_contain_text(re.compile(r"^2 of \d+"))
    await screenshot(page, "dead-letters-selected")
    assert await low_contrast(page) == []
    await page.get_by_role("button", name="Redrive 2 selected").click()
    await expect(page.get_by_role("status").first).to_contain_text(
        "Redriven 2 of 2 selected dead letter(s)."
    )
    for job_id in chosen:
        await expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
    await expect(page.locator(f'tr[data-job-id="{left}"]')).to_have_count(1)
    for job_id in chosen:
        view = await wait_for(stack.api, job_id, {"succeeded"})
        assert view["attempts"] == 2
    view = await wait_for(stack.api, left, {"dead_lettered"})
    assert [e for e in await events(stack.api, left) if e["type"] == "JobRedriven"] == []

    # a filter, then every letter it shows
    await page.goto(f"{stack.api}/ui#/dead-letters?reason=max_attempts&job_type=flaky")
    rows = page.locator("table[data-testid=dead-letters] tbody tr")
    await expect(rows.locator(f'xpath=self::tr[@data-job-id="{left}"]')).to_have_count(1)
    reasons = await rows.locator("td.reason").all_inner_texts()
    assert set(reasons) == {"max_attempts"}
    await page.get_by_role("checkbox", name="Select every dead letter shown").check()
    count = await rows.count()
    await expect(page.get_by_test_id("selected-count")).to_have_text(
        f"{count} of {count} shown selected"
    )
    await page.get_by_role("button", name=f"Redrive {count} selected").click()
    await expect(page.get_by_role("status").first).to_contain_text(f"Redriven {count} of {count}")
    await wait_for(stack.api, left, {"succeeded"})
