"""The dashboard's files: served without a token, only those shipped, with a strict CSP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from services.status.bootstrap import create_app
from shared.settings import StatusSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # no lifespan: these routes need neither broker nor database
    settings = StatusSettings(api_token=SecretStr("reader"), admin_token=SecretStr("admin"))
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_the_page_is_served_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="ui/static/app.js">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("name", ["app.js", "api.js", "style.css", "views/job.js"])
async def test_static_files_are_served_with_their_type(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    wanted = "text/css" if name.endswith(".css") else "text/javascript"
    assert response.headers["content-type"].startswith(wanted)


@pytest.mark.parametrize(
    "path", ["/ui/static/../routes.py", "/ui/static/%2e%2e/routes.py", "/ui/static/nope.js"]
)
async def test_nothing_but_the_shipped_files_is_served(
    client: httpx.AsyncClient, path: str
) -> None:
    # 404 from the dashboard; 401 where an auth gate sees a normalised path outside /ui/static
    response = await client.get(path)
    assert response.status_code in {401, 404}
    assert "import" not in response.text


async def test_a_trailing_slash_goes_back_to_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/", follow_redirects=False)
    assert response.status_code == 308
    assert (await client.get("/ui/", follow_redirects=True)).url.path == "/ui"


def test_no_external_url_in_the_dashboard() -> None:
    """Nothing from a CDN: the page must work without internet."""
    from services.status.entrypoints.ui.routes import FILES

    for name, path in FILES.items():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
        assert "https://" not in text, name


@pytest.mark.parametrize("name", ["../routes.py", "../../app.py", "/etc/passwd", "", "views"])
async def test_a_name_outside_the_shipped_files_is_refused(name: str) -> None:
    """The URL path may arrive un-normalised (no client does it for us): only known names."""
    from fastapi import HTTPException

    from services.status.entrypoints.ui.routes import static

    with pytest.raises(HTTPException) as refused:
        await static(name)
    assert refused.value.status_code == 404
