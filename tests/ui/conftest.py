"""Headless Chromium (Debian's package, driven by Playwright) for the dashboard tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
SAVED: list[Path] = []


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab (own sessionStorage); any script error on the page fails the test."""
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # the browser logs every non-2xx fetch; the page handles those (404, 401, 403)
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", console)
    yield page
    await context.close()
    assert not errors, f"script errors on the page: {errors}"


async def screenshot(page: Page, name: str) -> Path:
    """Saved under var/screenshots/ and printed, so a run leaves a picture of each view."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    SAVED.append(path)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The screenshots of this run, listed with the test output."""
    if SAVED:
        terminalreporter.write_sep("-", "dashboard screenshots")
        for path in SAVED:
            terminalreporter.write_line(str(path))


async def mark_loaded(page: Page) -> None:
    """A flag in the page's memory: gone if the page reloads."""
    await page.evaluate("window.__notReloaded = true")


async def not_reloaded(page: Page) -> bool:
    return bool(await page.evaluate("window.__notReloaded === true"))


CONTRAST = (Path(__file__).parent / "contrast.js").read_text()


async def low_contrast(page: Page) -> list[str]:
    """Visible text under WCAG AA contrast (4.5:1; 3:1 for large text)."""
    found: list[str] = await page.evaluate(CONTRAST)
    return found
