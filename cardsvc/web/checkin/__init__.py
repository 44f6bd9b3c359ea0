"""The phone check-in app (``/checkin``): an installable, offline-first page that scans member cards with the camera.

The page is plain HTML + ES modules from ``static/`` (served at ``/static/checkin/``). A device is set up by opening
the station's provisioning URL (``/checkin#setup=<code>``): the page exchanges the code for a device token, pins the
trust anchor and downloads the signed event bundle. Cards are then verified in the page (``static/verify.js``, the
same rules and reason codes as :mod:`verification`) and sent to ``POST /v1/events/{id}/checkins``; when the server
cannot be reached, the local verdict is shown and the scan is queued with its nonce until the server answers again.
See ``README.md`` in this folder for the design decisions (manual search, duplicates, storage).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
TEMPLATES: Final = HERE / "templates"

# jsQR is pure JavaScript: no 'wasm-unsafe-eval' needed. Workers are our own script (and blob: for decoders that
# build their worker from a blob URL). No inline script or style anywhere.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; worker-src 'self' blob:; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
# The worker script lives at /checkin/sw.js; it controls /checkin itself (one level up from its own folder), which
# the browser only allows with this header.
SW_SCOPE: Final = "/checkin"
SHELL_VERSION_MARK: Final = "@SHELL_VERSION@"

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=8)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@router.get("/checkin", response_class=HTMLResponse)
def checkin_page() -> HTMLResponse:
    """The scanning page (also the target of the station's provisioning QR: ``/checkin#setup=<code>``)."""
    return HTMLResponse(_read(TEMPLATES / "checkin.html"), headers=PAGE_HEADERS)


@router.get("/checkin/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest (installable PWA)."""
    return Response(_read(STATIC / "manifest.webmanifest"), media_type="application/manifest+json",
                    headers=PAGE_HEADERS)


@lru_cache(maxsize=1)
def shell_version() -> str:
    """A hash of the page, its scripts (the decoder worker and jsQR included), styles and icons: the service worker's
    cache version."""
    digest = hashlib.sha256()
    for path in sorted([*STATIC.rglob("*"), TEMPLATES / "checkin.html"]):
        if path.is_file():
            digest.update(path.relative_to(HERE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@router.get("/checkin/sw.js")
def service_worker() -> Response:
    """The service worker (caches the app shell under :func:`shell_version`); served from /checkin/ with the scope
    ``/checkin``."""
    script = _read(STATIC / "sw.js").replace(SHELL_VERSION_MARK, shell_version())
    return Response(script, media_type="text/javascript; charset=utf-8",
                    headers={**PAGE_HEADERS, "Service-Worker-Allowed": SW_SCOPE})


@router.get("/checkin/decoder-worker.js")
def decoder_worker() -> Response:
    """The QR decoding worker. A worker runs under the policy of its own script's response, so it is served here
    with the page's policy (the static mount answers with the API's ``default-src 'none'``)."""
    return Response(_read(STATIC / "decoder-worker.js"), media_type="text/javascript; charset=utf-8",
                    headers=PAGE_HEADERS)


@router.get("/checkin/selftest", response_class=HTMLResponse)
def selftest_page() -> HTMLResponse:
    """A blank page that loads the verifier module for the browser tests (no data, no state)."""
    return HTMLResponse(_read(TEMPLATES / "selftest.html"), headers=PAGE_HEADERS)
