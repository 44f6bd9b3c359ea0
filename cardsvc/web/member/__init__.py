"""The member's digital card: ``/m/<token>``, an installable page that keeps working offline.

The page is one HTML document, one stylesheet and one script, no framework: most members open it on a cheap Android
phone with a weak signal. The server renders the card (with the QR as SVG) into the page as JSON; ``card.js`` shows
it, keeps the last card it saw in ``localStorage`` and refreshes it from ``card.json`` whenever the phone is online.
The service worker (``sw.js``, served under the link so that its scope covers the page) keeps the page and its files
in Cache Storage, so a reload without any network still shows the card.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from cardsvc.api.deps import RequestIdDep, SessionDep, SettingsDep
from cardsvc.api.member_links import MemberCardOut
from cardsvc.api.wallet import pass_response, wallet_setup
from cardsvc.errors import NotFound
from cardsvc.services import member_links, wallet
from cardsvc.web import asset_url

HERE = Path(__file__).parent
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; worker-src 'self'; "
    "manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
# The page shows a member's name: no shared cache may keep it. (Cache Storage ignores this header, by design.)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store",
                "X-Robots-Tag": "noindex, nofollow"}
SERVICE_WORKER = (HERE / "sw.js").read_text(encoding="utf-8")
Token = Annotated[str, PathParam(max_length=64)]

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["b64"] = lambda text: base64.b64encode(text.encode()).decode()
templates.env.globals["asset_url"] = asset_url

router = APIRouter(include_in_schema=False)


def _page_path(token: str) -> str:
    return f"/m/{token}"


@router.get("/m/{token}", response_class=HTMLResponse)
def card_page(request: Request, token: Token, session: SessionDep, req_id: RequestIdDep) -> HTMLResponse:
    """The card page; an unknown or revoked link gets a 404 page that also wipes what the phone saved."""
    try:
        card = MemberCardOut.of(member_links.card_on_phone(session, token, request_id=req_id))
    except NotFound:
        return templates.TemplateResponse(request, "gone.html", {}, status_code=404, headers=PAGE_HEADERS)
    setup = wallet_setup(request)
    addable = card.state in wallet.ADDABLE
    context = {"card": card, "card_json": card.model_dump(mode="json"), "page_path": _page_path(token),
               "apple_wallet": addable and setup.apple is not None,
               "google_wallet": addable and setup.google is not None}
    return templates.TemplateResponse(request, "card.html", context, headers=PAGE_HEADERS)


@router.get("/m/{token}/manifest.webmanifest")
def manifest(token: Token, session: SessionDep, settings: SettingsDep, req_id: RequestIdDep) -> Response:
    """The web app manifest that makes the page installable, starting at this member's link."""
    member_links.resolve(session, token, request_id=req_id)
    page = _page_path(token)
    body: dict[str, Any] = {
        "id": page, "start_url": page, "scope": page, "display": "standalone", "lang": "vi",
        "name": f"Thẻ hội viên – {settings.union_name}", "short_name": "Thẻ hội viên",
        "background_color": "#ffffff", "theme_color": "#a3154f",
        "icons": [{"src": f"/static/member/icon-{size}.png", "sizes": f"{size}x{size}", "type": "image/png",
                   "purpose": "any"} for size in (192, 512)],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})


@router.get("/m/{token}/sw.js")
def service_worker(token: Token, session: SessionDep, req_id: RequestIdDep) -> Response:
    """The service worker. Served under the link (its default scope would be ``/m/<token>/``), with
    ``Service-Worker-Allowed`` so it may control the page ``/m/<token>`` itself."""
    member_links.resolve(session, token, request_id=req_id)
    # A worker runs under its script's own policy: the API's default ("default-src 'none'") would forbid its fetches.
    return Response(SERVICE_WORKER, media_type="text/javascript",
                    headers={"Service-Worker-Allowed": _page_path(token), "Cache-Control": "no-cache",
                             "Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.get("/m/{token}/wallet.pkpass")
def apple_wallet_pass(request: Request, token: Token, session: SessionDep, req_id: RequestIdDep) -> Response:
    """The card as an Apple Wallet pass; the link authorises it (unknown or revoked: 404, like the page)."""
    pass_file = wallet.apple_pass_for_link(session, wallet_setup(request), token, request_id=req_id)
    return pass_response(pass_file, filename="the-hoi-vien.pkpass")


@router.get("/m/{token}/wallet/google")
def google_wallet_pass(request: Request, token: Token, session: SessionDep, req_id: RequestIdDep) -> Response:
    """To Google Wallet's "save" page with a freshly signed save link."""
    url = wallet.google_save_link(session, wallet_setup(request), token, request_id=req_id)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
