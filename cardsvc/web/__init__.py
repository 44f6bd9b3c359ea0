"""Web pages: officer pages (/admin), the member's digital card (/m/…), and the phone check-in app (/checkin).

Each area is a sub-package with its own router, templates and static files; :func:`install_web` mounts them.
Pages set their own Content-Security-Policy (the API's default forbids everything).

Static files are sent gzip-compressed to browsers that accept it (the check-in page's QR decoder shrinks from
257 KB to 57) and carry a cache policy: an address made by :func:`asset_url` holds a hash of the file's
content and is kept for a year (a new version is a new address); any other address is revalidated with its ETag on
every use, which costs a 304 and keeps the service workers' copies current.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Scope

WEB_DIR = Path(__file__).parent
AREAS = ("admin", "member", "checkin")
FAVICON = WEB_DIR / "admin" / "static" / "favicon.png"
VERSIONED = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class CachedStaticFiles(StaticFiles):
    """Static files with the cache policy above (304 answers included)."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = any(part.startswith(b"v=") for part in scope.get("query_string", b"").split(b"&"))
        response.headers["Cache-Control"] = VERSIONED if versioned else REVALIDATE
        return response


@lru_cache(maxsize=128)
def _content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    """The address of a static file (``admin/admin.css``) with its content's hash: ``/static/admin/admin.css?v=…``."""
    area, _, file_name = name.partition("/")
    return f"/static/{area}/{file_name}?v={_content_hash(WEB_DIR / area / 'static' / file_name)}"


def favicon() -> FileResponse:
    """``/favicon.ico``, which browsers ask for by themselves (a PNG: every browser takes one under that name)."""
    return FileResponse(FAVICON, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def install_web(app: FastAPI) -> None:
    """Mount every web area that exists: its router and its ``static/`` folder at ``/static/<area>``."""
    for area in AREAS:
        package = WEB_DIR / area
        if not (package / "__init__.py").is_file():
            continue
        module = importlib.import_module(f"cardsvc.web.{area}")
        app.include_router(module.router)
        static = package / "static"
        if static.is_dir():
            app.mount(f"/static/{area}", GZipMiddleware(CachedStaticFiles(directory=static)), name=f"static-{area}")
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
