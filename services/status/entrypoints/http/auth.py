"""Bearer-token auth: API_TOKEN or ADMIN_TOKEN to read and submit; ADMIN_TOKEN to operate.

Two layers. `AuthGate` (ASGI middleware) refuses every request without a valid token
before any route runs -- `/docs`, `/openapi.json` and unknown paths included -- except
the public paths below, which hold no data. `require_admin` (a route dependency) then
keeps cancel and redrive to the admin token.
"""

from __future__ import annotations

import hmac
import json

from fastapi import Depends, HTTPException, Request

from services.status.entrypoints.http.errors import error_body
from services.status.entrypoints.http.limits import ASGIApp, Receive, Scope, Send
from shared.settings import StatusSettings

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ui", "/ui/"})
"""Answer without a token: probes, metrics, and the dashboard's HTML shell (no data in it;
the page asks for the token and sends it with every API call)."""
PUBLIC_PREFIXES: tuple[str, ...] = ("/ui/static/",)
"""Allow-list hook for the dashboard's static files (scripts, styles: no data)."""


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def tokens(settings: StatusSettings) -> tuple[str | None, str | None]:
    api = settings.api_token.get_secret_value() if settings.api_token else None
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    return api, admin


def bearer_token(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class AuthGate:
    """401 for any path but the public ones when a token is configured."""

    def __init__(self, app: ASGIApp, settings: StatusSettings) -> None:
        self.app = app
        self.api, self.admin = tokens(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.api is None and self.admin is None):
            await self.app(scope, receive, send)
            return
        if is_public(scope["path"]) or self._valid(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(error_body("missing or invalid bearer token")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _valid(self, scope: Scope) -> bool:
        raw = dict(scope["headers"]).get(b"authorization", b"")
        given = bearer_token(raw.decode("latin-1"))
        return bool(given) and (_matches(given, self.api) or _matches(given, self.admin))


def _given(request: Request) -> str:
    """The request's bearer token ("" without one). The header is read here rather than
    declared as a parameter: the OpenAPI document declares the security scheme from the
    settings (openapi.py), not from the routes."""
    return bearer_token(request.headers.get("authorization", ""))


async def require_reader(request: Request) -> None:
    """Either token (AuthGate already checks this; kept on routes as a second layer).

    `async`, like every dependency here: FastAPI runs a plain `def` in a worker thread,
    a thread hand-off (and interpreter-lock contention) on every request."""
    api, admin = tokens(request.app.state.settings)
    if api is None and admin is None:
        return
    given = _given(request)
    if not (_matches(given, api) or _matches(given, admin)):
        raise HTTPException(
            401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def require_admin(request: Request) -> None:
    """Cancel and redrive need ADMIN_TOKEN; with only API_TOKEN set, nobody may operate."""
    api, admin = tokens(request.app.state.settings)
    if api is None and admin is None:
        return
    given = _given(request)
    if _matches(given, admin):
        return
    if _matches(given, api):
        raise HTTPException(403, "this action needs the admin token (ADMIN_TOKEN)")
    raise HTTPException(
        401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )


Reader = Depends(require_reader)
Admin = Depends(require_admin)
