"""Serves the dashboard's page and static files: they hold no data, so they need no token.

Everything the page shows it fetches from the public API with the token the user enters,
so the dashboard can never see more than `curl` with the same token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).parent / "static"
# only the files shipped with the package are served: no path from the URL reaches the disk
FILES = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}

router = APIRouter(prefix="/ui", include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise HTTPException(404, "no such dashboard file")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix), headers=HEADERS)


@router.get("")
async def page() -> FileResponse:
    return _file("index.html")


@router.get("/")
async def trailing_slash() -> RedirectResponse:
    """`/ui/` would resolve the page's relative links one level too deep."""
    return RedirectResponse("../ui", status_code=308)


@router.get("/static/{name:path}")
async def static(name: str) -> FileResponse:
    return _file(name)
