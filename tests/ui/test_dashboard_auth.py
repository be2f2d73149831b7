"""Issue 14 with auth on: the token is entered once per tab; a reader sees no operator button."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from devtools.stack import Stack
from tests.e2e.client import wait_for
from tests.ui.conftest import screenshot

pytestmark = pytest.mark.connected

READER = "reader-token-for-the-dashboard-test"
ADMIN = "admin-token-for-the-dashboard-test"


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "API_TOKEN": READER, "ADMIN_TOKEN": ADMIN}


@pytest.fixture(scope="module")
async def dead_job(stack: Stack) -> str:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers) as http:
        body = {"job_type": "fail", "params": {"error": "no luck"}, "max_attempts": 1}
        job_id: str = (await http.post("/jobs", json=body)).raise_for_status().json()["job_id"]
    await wait_for(stack.api, job_id, {"dead_lettered"}, token=ADMIN)
    return job_id


async def _sign_in(page: Page, stack: Stack, token: str, where: str) -> None:
    await page.goto(f"{stack.api}/ui#{where}")
    await expect(page.get_by_role("heading", name="Token needed")).to_be_visible()
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Use this token").click()


async def test_the_page_and_its_files_need_no_token_but_the_data_does(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        page = await http.get("/ui")
        script = await http.get("/ui/static/app.js")
        stats = await http.get("/stats")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert stats.status_code == 401


async def test_a_reader_enters_the_token_once_and_sees_no_redrive_button(
    page: Page, stack: Stack, dead_job: str
) -> None:
    await _sign_in(page, stack, READER, "/dead-letters")
    row = page.locator(f'tr[data-job-id="{dead_job}"]')
    await expect(row).to_be_visible()
    await expect(page.get_by_role("button", name="Redrive")).to_have_count(0)
    await expect(page.locator("#session")).to_contain_text("read-only")
    await screenshot(page, "dead-letters-reader")
    # another view, and a reload: the token is kept for the tab's session
    await page.get_by_role("link", name="Jobs").click()
    await expect(page.locator(f'tr[data-job-id="{dead_job}"]')).to_be_visible()
    await page.reload()
    await expect(page.locator(f'tr[data-job-id="{dead_job}"]')).to_be_visible()
    await expect(page.get_by_role("heading", name="Token needed")).to_have_count(0)


async def test_an_operator_token_shows_the_redrive_button(
    page: Page, stack: Stack, dead_job: str
) -> None:
    await _sign_in(page, stack, ADMIN, "/dead-letters")
    row = page.locator(f'tr[data-job-id="{dead_job}"]')
    await expect(row.get_by_role("button", name="Redrive")).to_be_visible()
    await expect(page.locator("#session")).to_contain_text("operator")


async def test_a_wrong_token_is_asked_for_again(page: Page, stack: Stack) -> None:
    await _sign_in(page, stack, "not-a-token", "/jobs")
    await expect(page.get_by_text("That token was refused")).to_be_visible()
    await screenshot(page, "token-prompt")


async def _running_sleep(stack: Stack) -> str:
    headers = {"Authorization": f"Bearer {READER}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers) as http:
        body = {"job_type": "sleep", "params": {"seconds": 20}}
        job_id: str = (await http.post("/jobs", json=body)).raise_for_status().json()["job_id"]
    await wait_for(stack.api, job_id, {"running"}, token=READER)
    return job_id


async def test_cancel_is_for_operators_only(page: Page, stack: Stack) -> None:
    job_id = await _running_sleep(stack)
    await _sign_in(page, stack, READER, f"/jobs/{job_id}")
    await expect(page.locator(".headline .badge")).to_have_text("running")
    await expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    await page.evaluate("sessionStorage.clear()")
    await _sign_in(page, stack, ADMIN, f"/jobs/{job_id}")
    await page.get_by_role("button", name="Cancel job").click()
    await expect(page.locator(".headline .badge")).to_have_text("cancelled", timeout=20_000)
    view = await wait_for(stack.api, job_id, token=ADMIN)
    assert view["status"] == "cancelled"
