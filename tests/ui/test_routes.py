"""The dashboard's files: served without a token, only those shipped, with a strict CSP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.status.app import create_app
from shared.settings import StatusSettings


@pytest.fixture(scope="module")
def client() -> TestClient:
    # no lifespan: these routes need neither broker nor database
    settings = StatusSettings(api_token=SecretStr("reader"), admin_token=SecretStr("admin"))
    return TestClient(create_app(settings))


def test_the_page_is_served_without_a_token(client: TestClient) -> None:
    response = client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="ui/static/app.js">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("name", ["app.js", "api.js", "style.css", "views/job.js"])
def test_static_files_are_served_with_their_type(client: TestClient, name: str) -> None:
    response = client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    wanted = "text/css" if name.endswith(".css") else "text/javascript"
    assert response.headers["content-type"].startswith(wanted)


@pytest.mark.parametrize(
    "path", ["/ui/static/../routes.py", "/ui/static/%2e%2e/routes.py", "/ui/static/nope.js"]
)
def test_nothing_but_the_shipped_files_is_served(client: TestClient, path: str) -> None:
    # 404 from the dashboard; 401 where an auth gate sees a normalised path outside /ui/static
    response = client.get(path)
    assert response.status_code in {401, 404}
    assert "import" not in response.text


def test_a_trailing_slash_goes_back_to_the_page(client: TestClient) -> None:
    response = client.get("/ui/", follow_redirects=False)
    assert response.status_code == 308
    assert client.get("/ui/").url.path == "/ui"


def test_no_external_url_in_the_dashboard() -> None:
    """Nothing from a CDN: the page must work without internet."""
    from services.status.ui.routes import FILES

    for name, path in FILES.items():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
        assert "https://" not in text, name
