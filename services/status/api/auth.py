"""Bearer-token auth: API_TOKEN or ADMIN_TOKEN to read and submit; ADMIN_TOKEN to operate."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import StatusSettings

bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _tokens(request: Request) -> tuple[str | None, str | None]:
    settings: StatusSettings = request.app.state.settings
    api = settings.api_token.get_secret_value() if settings.api_token else None
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    return api, admin


def require_reader(request: Request, credentials: Credentials) -> None:
    api, admin = _tokens(request)
    if api is None and admin is None:
        return
    given = credentials.credentials if credentials else ""
    if not (_matches(given, api) or _matches(given, admin)):
        raise HTTPException(
            401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


def require_admin(request: Request, credentials: Credentials) -> None:
    """ADMIN_TOKEN is needed; where only API_TOKEN is set, it is the operator's token too."""
    api, admin = _tokens(request)
    if api is None and admin is None:
        return
    given = credentials.credentials if credentials else ""
    if _matches(given, admin) or (admin is None and _matches(given, api)):
        return
    if _matches(given, api):
        raise HTTPException(403, "this action needs the admin token")
    raise HTTPException(
        401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )


Reader = Depends(require_reader)
Admin = Depends(require_admin)
