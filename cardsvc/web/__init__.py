"""Web pages: officer pages (/admin), the member's digital card (/m/…), and the phone check-in app (/checkin).

Each area is a sub-package with its own router, templates and static files; :func:`install_web` mounts them.
Pages set their own Content-Security-Policy (the API's default forbids everything).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).parent
AREAS = ("admin", "member", "checkin")


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
            app.mount(f"/static/{area}", StaticFiles(directory=static), name=f"static-{area}")
