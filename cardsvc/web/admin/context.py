"""What every officer page shares: the page context (language, session, officer), rendering, and error mapping.

:class:`PageRoute` wraps each page's handler so that a service error (``cardsvc.errors``) becomes a friendly page
in the officer's language with the right status — never a JSON body or a 500 — and so that every response carries
the pages' Content-Security-Policy, ``Cache-Control: no-store`` (pages show names of members) and any session
cookie the request changed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from cardsvc.addresses import public_base_url
from cardsvc.api.deps import SessionDep
from cardsvc.days import VIETNAM_TZ
from cardsvc.errors import (
    AuthenticationFailed,
    CardsvcError,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    ValidationFailed,
)
from cardsvc.services.context import WRITE_ROLES, Actor
from cardsvc.services.logins import resume_page_session
from cardsvc.services.members import MEMBER_NUMBER_LENGTH, MemberSearch
from cardsvc.services.officers import actor_for
from cardsvc.web import asset_url
from cardsvc.web.admin.i18n import has, pick_language, translate
from cardsvc.web.admin.session import COOKIE_NAME, CSRF_FIELD, LANGUAGE_COOKIE, PageSession, SessionCodec

PREFIX = "/admin"
LOGIN_PATH = f"{PREFIX}/login"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def _local_time(value: datetime | None) -> str:
    # Officers read local (Vietnam) times.
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M") if value else ""


templates.env.filters["day"] = _day
templates.env.filters["local_time"] = _local_time
templates.env.globals["asset_url"] = asset_url


class LoginRequired(Exception):
    """No valid officer session: the page answers with a redirect to the login form."""


@dataclass
class Page:
    """The request as the pages see it: language, cookie session, and the officer (reloaded every request)."""

    request: Request
    lang: str
    codec: SessionCodec
    session: PageSession
    actor: Actor | None = None
    officer_name: str = ""
    new_cookie: str | None = None
    new_language: str | None = None
    notices: list[str] = field(default_factory=list)

    def t(self, key: str, **params: object) -> str:
        return translate(self.lang, key, **params)

    @property
    def csrf_token(self) -> str:
        return self.codec.csrf_token(self.session)

    @property
    def request_id(self) -> str | None:
        value: str | None = getattr(self.request.state, "request_id", None)
        return value

    @property
    def can_write(self) -> bool:
        return self.actor is not None and self.actor.role in WRITE_ROLES

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise LoginRequired
        return self.actor

    def start_session(self, session_id: int | None) -> None:
        """Replace the session (login, logout): a new nonce, so an earlier CSRF token stops working."""
        self.session = self.codec.new(session_id)
        self.new_cookie = self.codec.encode(self.session)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        values = {"page": self, "t": self.t, "lang": self.lang, "csrf_field": CSRF_FIELD, **context}
        return templates.TemplateResponse(self.request, template, values, status_code=status_code)


def member_query(text: str, *, limit: int, offset: int = 0, chapter_id: int | None = None) -> MemberSearch:
    """What an officer typed into a member search box: a whole member number (which also finds a merged record), or
    a name or the first digits of a number."""
    number = text if text.isdigit() and len(text) == MEMBER_NUMBER_LENGTH else None
    return MemberSearch(query=None if number else text or None, member_number=number, chapter_id=chapter_id,
                        limit=limit, offset=offset)


def answer_once(response: Response) -> Response:
    """A page that answers a form with something shown once (a set-up code, a card link, a check-in): no copy in
    any cache; its script takes the plain page's address (``data-replace-url``), so a reload does not post again."""
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> RedirectResponse:
    """After a POST: 303 so the browser GETs the next page (a reload does not repeat the action)."""
    return RedirectResponse(url, status_code=303)


def _codec(request: Request) -> SessionCodec:
    return SessionCodec.from_settings(request.app.state.settings, base_url=public_base_url(request))


def get_page(request: Request, db: SessionDep) -> Page:
    codec = _codec(request)
    session = codec.decode(request.cookies.get(COOKIE_NAME))
    page = Page(request=request, lang=pick_language(request.cookies.get(LANGUAGE_COOKIE)), codec=codec,
                session=session or codec.new(None))
    if session is None:
        page.new_cookie = codec.encode(page.session)
        if request.cookies.get(COOKIE_NAME):
            page.notices.append(page.t("login.expired"))
    elif session.session_id is not None:
        try:
            officer = resume_page_session(db, session.session_id, idle=codec.idle, limit=codec.lifetime)
        except AuthenticationFailed:
            page.start_session(None)
            page.notices.append(page.t("login.expired"))
        else:
            page.actor = actor_for(officer, getattr(request.state, "request_id", None))
            page.officer_name = officer.full_name or officer.username
    request.state.admin_page = page
    return page


PageDep = Annotated[Page, Depends(get_page)]


def get_officer_page(page: PageDep) -> Page:
    page.require_actor()
    return page


OfficerPageDep = Annotated[Page, Depends(get_officer_page)]


async def _require_csrf(request: Request, page: Page) -> Page:
    form = await request.form()
    supplied = form.get(CSRF_FIELD)
    if not isinstance(supplied, str) or not page.codec.csrf_ok(page.session, supplied):
        raise PermissionDenied("the form's CSRF token is missing or wrong", code="csrf_failed")
    return page


async def get_posted_page(request: Request, page: OfficerPageDep) -> Page:
    """A POST from a signed-in officer whose form carries this session's CSRF token (403 otherwise)."""
    return await _require_csrf(request, page)


async def get_posted_login(request: Request, page: PageDep) -> Page:
    """The login POST: the anonymous session's CSRF token is required too (no login CSRF)."""
    return await _require_csrf(request, page)


PostedPageDep = Annotated[Page, Depends(get_posted_page)]
PostedLoginDep = Annotated[Page, Depends(get_posted_login)]


def error_messages(lang: str, exc: CardsvcError) -> tuple[str, list[str]]:
    """A headline and detail lines for a service error, in the officer's language, without jargon."""
    status_key = f"error.status.{exc.status_code}"
    if has(lang, f"error.{exc.code}"):
        headline = translate(lang, f"error.{exc.code}")
    else:
        headline = translate(lang, status_key if has(lang, status_key) else "error.status.500")
    lines: list[str] = []
    # A card refused for the member's stored data names the field to correct, like a form error does.
    if (isinstance(exc, ValidationFailed) or exc.code == "card_data_invalid") and isinstance(exc.details, list):
        for detail in exc.details[:50]:
            if isinstance(detail, dict):
                lines.append(_detail_line(lang, detail))
    return headline, lines


def _detail_line(lang: str, detail: dict[str, Any]) -> str:
    field_name = str(detail.get("field") or "")
    # An untranslated field is left unnamed rather than shown by its internal name (``birth_date``).
    label = translate(lang, f"field.{field_name}") if has(lang, f"field.{field_name}") else ""
    code = str(detail.get("code") or detail.get("problem") or "")
    if lang == "vi" and detail.get("message_vi"):
        text = str(detail["message_vi"])
    elif has(lang, f"problem.{code}"):
        text = translate(lang, f"problem.{code}")
    elif lang == "en" and detail.get("message"):
        text = str(detail["message"])
    else:  # never an English sentence on a Vietnamese page
        text = translate(lang, "problem.invalid")
    prefix = f"{translate(lang, 'import.row')} {detail['row']}: " if detail.get("row") else ""
    return f"{prefix}{label}: {text}" if label else f"{prefix}{text}"


def _page_for_error(request: Request) -> Page:
    page = getattr(request.state, "admin_page", None)
    if isinstance(page, Page):
        return page
    codec = _codec(request)
    session = codec.decode(request.cookies.get(COOKIE_NAME)) or codec.new(None)
    return Page(request=request, lang=pick_language(request.cookies.get(LANGUAGE_COOKIE)), codec=codec,
                session=session)


def error_page(request: Request, exc: CardsvcError) -> Response:
    page = _page_for_error(request)
    headline, lines = error_messages(page.lang, exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    response = page.render("error.html", status_code=exc.status_code, headline=headline, lines=lines)
    if headers:
        response.headers.update(headers)
    return response


def finish(request: Request, response: Response) -> Response:
    """Headers every page response carries, and the cookies the request changed."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers.setdefault("Cache-Control", "no-store")
    page = getattr(request.state, "admin_page", None)
    if isinstance(page, Page):
        if page.new_cookie is not None:
            response.set_cookie(COOKIE_NAME, page.new_cookie, max_age=page.codec.max_age, path="/",
                                httponly=True, samesite="strict", secure=page.codec.secure)
        if page.new_language is not None:
            response.set_cookie(LANGUAGE_COOKIE, page.new_language, max_age=365 * 24 * 3600, path="/",
                                httponly=True, samesite="lax", secure=page.codec.secure)
    return response


class PageRoute(APIRoute):
    """A page route: service errors become friendly pages; every response gets the pages' headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                response = redirect(LOGIN_PATH)
            except CardsvcError as exc:
                response = error_page(request, exc)
            except RequestValidationError as exc:
                # Only malformed URLs or forged forms get here (pages parse their own fields themselves).
                if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in exc.errors()):
                    response = error_page(request, NotFound("not found"))
                else:
                    details = [{"field": str(e.get("loc", ("",))[-1]), "code": "invalid"} for e in exc.errors()]
                    response = error_page(request, ValidationFailed("invalid input", details=details))
            return finish(request, response)

        return page_handler
