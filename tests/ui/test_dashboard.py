"""Issue 14: the dashboard in headless Chromium against the real stack (no auth)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from devtools.stack import Stack
from tests.e2e.client import events, job, submit, wait_for
from tests.ui.conftest import low_contrast, mark_loaded, not_reloaded, screenshot

pytestmark = pytest.mark.connected

OPEN = re.compile(r"^(submitted|scheduled|queued|running)$")


async def _submit(stack: Stack, **job: object) -> str:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post("/jobs", json=job)
        response.raise_for_status()
        job_id: str = response.json()["job_id"]
        return job_id


async def test_a_job_submitted_on_the_page_turns_succeeded_live(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.api}/ui#/jobs")
    await mark_loaded(page)
    await page.get_by_text("Submit a job").click()
    await page.get_by_label("Job type").first.fill("sleep")
    await page.get_by_label("Params (JSON)").fill('{"seconds": 3}')
    await page.get_by_role("button", name="Submit job").click()
    link = page.locator("form.submit a")
    await expect(link).to_be_visible()
    job_id = await link.get_attribute("title")
    assert job_id
    status = page.locator(f'tr[data-job-id="{job_id}"] td.status')
    await expect(status).to_have_text(OPEN, timeout=15_000)
    await expect(status).to_have_text("succeeded", timeout=30_000)
    await screenshot(page, "jobs")
    assert await low_contrast(page) == []
    assert await not_reloaded(page)


async def test_a_job_page_follows_the_job_live(page: Page, stack: Stack) -> None:
    job_id = await _submit(stack, job_type="sleep", params={"seconds": 4})
    await wait_for(stack.api, job_id, {"running"})
    await page.goto(f"{stack.api}/ui#/jobs/{job_id}")
    await mark_loaded(page)
    headline = page.locator(".headline .badge")
    await expect(headline).to_have_text("running")
    await expect(page.locator("progress")).to_be_visible()
    await expect(page.locator(".progress-text")).to_contain_text(re.compile(r"\d+% — slept"))
    # a live refresh keeps the keyboard focus where it was
    cancel = page.get_by_role("button", name="Cancel job")
    for _ in range(10):  # a refresh may replace the button between finding and focusing it
        await cancel.focus()
        if await cancel.evaluate("button => button === document.activeElement"):
            break
    before = await page.locator(".progress-text").inner_text()
    await expect(page.locator(".progress-text")).not_to_have_text(before)
    await expect(cancel).to_be_focused()
    await screenshot(page, "job-running")
    await expect(headline).to_have_text("succeeded", timeout=30_000)
    await expect(page.get_by_test_id("rule")).to_have_text("default")
    await expect(page.get_by_test_id("reason")).not_to_have_text("—")
    await expect(page.get_by_test_id("timeline")).to_contain_text("JobSucceeded")
    await screenshot(page, "job-succeeded")
    assert await not_reloaded(page)


async def test_a_failed_job_shows_its_error(page: Page, stack: Stack) -> None:
    job_id = await _submit(stack, job_type="fail", params={"error": "disk on fire"}, max_attempts=1)
    await wait_for(stack.api, job_id, {"dead_lettered"})
    await page.goto(f"{stack.api}/ui#/jobs")
    await page.locator(f'tr[data-job-id="{job_id}"] a').click()
    await expect(page.locator(".headline .badge")).to_have_text("dead_lettered")
    await expect(page.get_by_test_id("error")).to_contain_text("disk on fire")
    await expect(page.get_by_test_id("timeline")).to_contain_text("JobDeadLettered")
    await screenshot(page, "job-failed")
    assert await low_contrast(page) == []


async def test_a_dead_letter_is_redriven_by_a_click(page: Page, stack: Stack) -> None:
    job_id = await _submit(stack, job_type="flaky", params={"fail_times": 1}, max_attempts=1)
    await wait_for(stack.api, job_id, {"dead_lettered"})
    await page.goto(f"{stack.api}/ui#/dead-letters")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row.locator("td.reason")).to_have_text("max_attempts")
    await screenshot(page, "dead-letters")
    assert await low_contrast(page) == []
    await row.get_by_role("combobox").select_option("public")
    await row.get_by_role("button", name="Redrive").click()
    await expect(page.get_by_role("status").first).to_contain_text("Redriven")
    await expect(row).to_have_count(0)
    view = await wait_for(stack.api, job_id, {"succeeded"})
    history = await events(stack.api, job_id)
    redriven = [e for e in history if e["type"] == "JobRedriven"]
    assert [(e["site"], e["next_attempt"]) for e in redriven] == [("public", 2)]
    started = [(e["attempt"], e["site"]) for e in history if e["type"] == "JobStarted"]
    assert started[-1] == (2, "public")
    assert (view["site"], view["attempts"]) == ("public", 2)


async def test_overview_shows_sites_throughput_and_fleet(page: Page, stack: Stack) -> None:
    job_id = await _submit(stack, job_type="noop", target_cloud="private")
    await wait_for(stack.api, job_id)
    await page.goto(f"{stack.api}/ui")
    count = page.get_by_test_id("count-private-succeeded")
    await expect(count).not_to_have_text("0")
    await expect(page.get_by_test_id("backlog-private")).to_have_text(re.compile(r"^\d+$"))
    chart = page.locator("svg.chart")
    await expect(chart).to_be_visible()
    # the finished jobs of the last minutes are in the chart (filled in from the job list)
    assert await chart.locator("rect.ok").count() > 0
    workers = page.get_by_role("region", name="Workers")
    await expect(workers).to_contain_text(re.compile(r"Not available|Worker|No worker"))
    await screenshot(page, "overview")
    assert await low_contrast(page) == []
    await count.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r"#/jobs\?status=succeeded&site=private$"))
    await expect(page.locator(f'tr[data-job-id="{job_id}"] td.status')).to_have_text("succeeded")


async def test_group_and_schedule_pages(page: Page, stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post(
            "/job-groups", json={"jobs": [{"job_type": "noop"}, {"job_type": "noop"}]}
        )
        group_id = response.raise_for_status().json()["group_id"]
    await page.goto(f"{stack.api}/ui#/groups/{group_id}")
    await expect(page.locator(".headline .badge")).to_have_text("succeeded", timeout=20_000)
    await expect(page.locator("tbody tr")).to_have_count(2)
    await screenshot(page, "group")
    await page.get_by_role("link", name="Schedules").click()
    await expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    await expect(page.locator("main")).to_contain_text(
        re.compile(r"Not available|No schedules|Name")
    )
    await screenshot(page, "schedules")


async def test_the_page_reads_the_event_stream(page: Page, stack: Stack) -> None:
    """The SSE reader (fetch, so it can send a token) against the server's real stream."""
    job_id = await _submit(stack, job_type="noop")
    await wait_for(stack.api, job_id)
    await page.goto(f"{stack.api}/ui#/jobs/{job_id}")
    seen = await page.evaluate(
        """async (id) => {
            const api = await import("./ui/static/api.js");
            const seen = [];
            const add = (name, data) => seen.push([name, JSON.parse(data)]);
            await api.stream(`/jobs/${id}/stream`, add);
            return seen;
        }""",
        job_id,
    )
    history = await events(stack.api, job_id)
    assert [name for name, _ in seen] == [e["type"] for e in history] + ["end"]
    assert seen[-1][1] == {"status": "succeeded"}
    assert [data["event_id"] for _, data in seen[:-1]] == [e["event_id"] for e in history]


async def test_the_dashboard_is_usable_by_keyboard(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.api}/ui")
    await expect(page.get_by_role("heading", name="Overview")).to_be_focused()
    for _ in range(10):  # the skip link, then the section links
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "Jobs":
            break
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Jobs")).to_be_focused()
    assert page.url.endswith("#/jobs")
    # the skip link moves focus to the content without changing the route
    await page.evaluate("document.getElementById('skip').focus()")
    await page.keyboard.press("Enter")
    assert page.url.endswith("#/jobs")
    await expect(page.locator("main")).to_be_focused()


async def test_filters_and_cursor_pages(page: Page, stack: Stack) -> None:
    ids = await submit(stack.env["AMQP_URL"], *[job("noop") for _ in range(30)])
    for job_id in ids:
        await wait_for(stack.api, job_id)
    await page.goto(f"{stack.api}/ui#/jobs")
    await page.get_by_label("Job type", exact=True).last.fill("noop")
    await page.get_by_label("Status").select_option("succeeded")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page).to_have_url(re.compile(r"#/jobs\?status=succeeded&job_type=noop$"))
    rows = page.locator("table[data-testid=jobs] tbody tr")
    await expect(rows).to_have_count(25)
    first = set(await rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)"))
    assert await page.locator("td.status").all_inner_texts() == ["succeeded"] * 25
    await page.get_by_role("button", name="Next page").click()
    await expect(page).to_have_url(re.compile(r"cursor="))
    await expect(rows.first).not_to_have_attribute("data-job-id", re.compile("|".join(first)))
    second = set(await rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)"))
    assert second
    assert not first & second
    assert set(ids) <= first | second
    await page.get_by_role("button", name="Previous page").click()
    await expect(rows).to_have_count(25)
    assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == first
