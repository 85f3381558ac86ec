"""The web page: `/` (index.html), `/page/<asset>` (its scripts and styles, bundled in the package,
no CDN) and `/v1/results` (what its evaluation tab draws, see serve/results.py).

The page and its assets hold no data, so they are served without an API key; every call the page
makes goes through the REST API with the key the user types in (kept in the tab's sessionStorage).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from uniembed.serve.api_errors import ApiError
from uniembed.serve.openapi import ERROR_RESPONSES

PAGE_DIR = Path(__file__).resolve().parent / "page"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
RESULTS_DIR = Path(
    "results"
)  # where `uniembed eval` writes by default, read from the working folder


def page_assets() -> dict[str, Path]:
    """The files the page may load, by name: nothing outside PAGE_DIR can be asked for."""
    return {
        path.name: path
        for path in PAGE_DIR.iterdir()
        if path.suffix in CONTENT_TYPES and path.name != "index.html"
    }


def page_routes(state):
    from fastapi import APIRouter
    from fastapi.responses import Response

    router = APIRouter()
    assets = page_assets()
    security = {
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

    @router.get("/", include_in_schema=False)
    async def index():
        return Response(
            (PAGE_DIR / "index.html").read_bytes(),
            media_type=CONTENT_TYPES[".html"],
            headers=security,
        )

    @router.get("/page/{asset}", include_in_schema=False)
    async def asset(asset: str):
        path = assets.get(asset)
        if path is None:
            raise ApiError(404, f"no page asset named {asset!r}", param="asset", code="not_found")
        return Response(path.read_bytes(), media_type=CONTENT_TYPES[path.suffix], headers=security)

    @router.get("/v1/results", tags=["evaluation"], responses=ERROR_RESPONSES)
    async def results():
        """MTEB-shaped results and quality-against-cost charts from ./results and --results folders."""
        from uniembed.serve.results import read_results

        folders = [RESULTS_DIR, *state.settings.results_dirs]
        return await asyncio.to_thread(read_results, folders)

    return router
