"""The chat page: plain HTML/CSS/JS from `tasks/chat/web/`, no build step, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from tasks.chat.validation import ApiError

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page's files, by URL name; anything else under /static is a 404 (no directory listing,
# no path traversal to worry about).
STATIC_FILES: dict[str, str] = {"chat.js": "text/javascript", "chat.css": "text/css"}
PAGE_HEADERS = {
    # Everything the page needs comes from this server; the policy makes that a guarantee.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise ApiError(404, f"no static file {name!r}", code="not_found")
    return FileResponse(WEB_DIR / name, media_type=STATIC_FILES[name], headers=PAGE_HEADERS)


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(status_code=204)  # browsers ask; a 404 would only clutter the console
