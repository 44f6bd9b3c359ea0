"""The officer pages under ``/admin``: each route parses the form or URL, calls the same service function as the
API, and renders a template (or redirects after a POST). Scope and permissions are the services' business: an
out-of-scope member is "not found" here exactly as in the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cardsvc.api.deps import (
    BatchSchedulerDep,
    CipherDep,
    KeyRingDep,
    LoginRateLimitDep,
    SessionDep,
    SettingsDep,
    UploadKeeperDep,
    client_address,
)
from cardsvc.api.schemas import INT64_MAX, Id
from cardsvc.days import VIETNAM_TZ
from cardsvc.db.base import utcnow
from cardsvc.db.models import REVOCATION_REASONS, Job
from cardsvc.errors import AuthenticationFailed, PayloadTooLarge, ValidationFailed
from cardsvc.services import (
    bindings,
    cards,
    chapters,
    events,
    imports,
    jobs,
    logins,
    member_links,
    members,
    merges,
    officers,
    printing,
    reports,
    wallet,
)
from cardsvc.services.card_batches import Pace
from cardsvc.services.pii import masked_view
from cardsvc.web.admin.context import (
    LOGIN_PATH,
    PREFIX,
    OfficerPageDep,
    Page,
    PageDep,
    PageRoute,
    PostedLoginDep,
    PostedPageDep,
    error_messages,
    member_query,
    redirect,
)
from cardsvc.web.admin.i18n import LANGUAGES

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
REISSUE_REASONS = ("lost", "damaged", "name_change", "other")
DONE_MESSAGES = frozenset({"issued", "suspended", "reinstated", "revoked", "merged", "link_sent_sms",
                           "link_sent_zalo", "link_revoked", "live_deactivated"})
Text = Annotated[str, Form(max_length=500)]


def _chapter_id(value: str) -> int | None:
    """The chapter id a form field or query names, or None when it names none (as :data:`Id`: no id is beyond 64
    bits, which the database driver could not even bind)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= INT64_MAX:
        return None
    return int(text)


def _chapter_choices(session: SessionDep, page: OfficerPageDep) -> list[dict[str, Any]]:
    actor = page.require_actor()
    found = chapters.list_chapters(session, actor, limit=500)
    base = min((c.depth for c in found), default=0)
    return [{"id": c.id, "code": c.code, "name": c.name, "indent": c.depth - base} for c in found]


# Login, logout, language ------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(page: PageDep) -> Response:
    if page.actor is not None:
        return redirect(PREFIX)
    return page.render("login.html")


@router.post("/login", dependencies=[LoginRateLimitDep])
def login(page: PostedLoginDep, session: SessionDep, settings: SettingsDep, username: Text = "",
          password: Text = "") -> Response:
    try:
        page_session = logins.sign_in_page(session, username=username, password=password,
                                           address=client_address(page.request),
                                           max_failures=settings.login_max_failures,
                                           lockout_seconds=settings.login_lockout_seconds,
                                           request_id=page.request_id)
    except AuthenticationFailed as exc:
        headline, _lines = error_messages(page.lang, exc)
        return page.render("login.html", status_code=exc.status_code, error=headline, username=username)
    page.start_session(page_session.id)
    return redirect(PREFIX)


@router.post("/logout")
def logout(page: PostedPageDep, session: SessionDep) -> Response:
    """Ends the session on the server: the old cookie is worthless even if someone kept a copy."""
    if page.session.session_id is not None:
        logins.end_page_session(session, page.session.session_id)
    page.start_session(None)
    return redirect(LOGIN_PATH)


@router.post("/sign-out-everywhere")
def sign_out_everywhere(page: PostedPageDep, session: SessionDep) -> Response:
    """Ends every session of the officer: this one, her other browsers and her API tokens."""
    actor = page.require_actor()
    assert actor.id is not None
    officers.sign_out_everywhere(session, actor, actor.id)
    page.start_session(None)
    return redirect(LOGIN_PATH)


@router.get("/language/{lang}")
def switch_language(page: PageDep, lang: str, back: Annotated[str, Query(max_length=300)] = PREFIX) -> Response:
    """A preference only (no data changes), so a plain link; ``back`` must stay inside the officer pages."""
    if lang in LANGUAGES:
        page.new_language = lang
    safe = back if back.startswith(PREFIX) and not back.startswith("//") and "\\" not in back else PREFIX
    return RedirectResponse(safe, status_code=303)


# Home and members -------------------------------------------------------------------------------------------------


@router.get("")
def home(page: OfficerPageDep, session: SessionDep) -> Response:
    actor = page.require_actor()
    scope = None
    if actor.scope_path is not None:
        scope = chapters.list_chapters(session, actor, limit=1)
    # Administrators renew the wallet certificates: they are warned a month ahead.
    expiring = wallet.expiry_warning(page.request.app.state.wallet, utcnow()) if actor.role == "admin" else None
    return page.render("home.html", scope=scope[0] if scope else None, wallet_expiry=expiring)


@router.get("/members")
def member_search(page: OfficerPageDep, session: SessionDep, cipher: CipherDep,
                  q: Annotated[str, Query(max_length=100)] = "",
                  chapter: Annotated[str, Query(max_length=20)] = "",
                  offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> Response:
    actor = page.require_actor()
    chapter_id = _chapter_id(chapter)
    text = q.strip()
    found = None
    if text or chapter_id is not None:
        found = members.search_members(session, actor, cipher, member_query(
            text, chapter_id=chapter_id, limit=PAGE_SIZE + 1, offset=offset))
    more = None
    if found is not None and len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        more = "?" + urlencode({"q": text, "chapter": chapter, "offset": offset + PAGE_SIZE})
    shown = None if found is None else [(member, masked_view(member, actor)) for member in found]
    return page.render("members.html", q=text, chapter=chapter_id, members=shown, more=more, offset=offset,
                       chapters=_chapter_choices(session, page))


@router.get("/members/{member_id}")
def member_detail(member_id: Id, page: OfficerPageDep, session: SessionDep,
                  done: Annotated[str, Query(max_length=20)] = "") -> Response:
    return _member_page(page, session, member_id, done=done)


def _member_page(page: OfficerPageDep, session: SessionDep, member_id: int, *, done: str = "",
                 binding_code: bindings.IssuedCode | None = None) -> Response:
    actor = page.require_actor()
    member = members.get_member(session, actor, member_id)
    history = list(reversed(cards.member_cards(session, actor, member.id)))
    current = next((c for c in history if c.status in cards.CURRENT), None)
    pairs = [] if member.merged_into_id else merges.probable_duplicates(session, actor, member_id=member.id, limit=20)
    others = [p.second if p.first.id == member.id else p.first for p in pairs]
    duplicates = [(other, masked_view(other, actor)) for other in others]
    link = next((k for k in reversed(member_links.list_links(session, actor, member.id)) if k.revoked_at is None),
                None)
    return page.render("member.html", member=member, pii=masked_view(member, actor), history=history, current=current,
                       duplicates=duplicates, done=done if done in DONE_MESSAGES else None,
                       revoke_reasons=REVOCATION_REASONS, reissue_reasons=REISSUE_REASONS, link=link,
                       sending_problem=member_links.sending_problem(session, member),
                       binding=bindings.member_binding(session, actor, member.id), binding_code=binding_code)


@router.post("/members/{member_id}/binding-code")
def create_binding_code(member_id: Id, page: PostedPageDep, session: SessionDep) -> Response:
    """Shows the one-time activation code on the answer itself: it is never stored in clear."""
    issued = bindings.create_code(session, page.require_actor(), member_id)
    response = _member_page(page, session, member_id, binding_code=issued)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/members/{member_id}/binding/deactivate")
def deactivate_binding(member_id: Id, page: PostedPageDep, session: SessionDep) -> Response:
    bindings.deactivate_by_officer(session, page.require_actor(), member_id)
    return redirect(_member_url(member_id, "live_deactivated"))


@router.post("/members/{member_id}/merge")
def merge_member(member_id: Id, page: PostedPageDep, session: SessionDep, duplicate: Text = "") -> Response:
    """Merge a probable duplicate (listed on the member's page) into this member."""
    if not duplicate.isdigit():
        raise ValidationFailed("choose the record to merge", details=[{"field": "duplicate_id", "code": "required"}])
    merges.merge_members(session, page.require_actor(), member_id, int(duplicate))
    return redirect(_member_url(member_id, "merged"))


# Cards ------------------------------------------------------------------------------------------------------------


def _member_url(member_id: int, done: str) -> str:
    return f"{PREFIX}/members/{member_id}?done={done}"


@router.post("/members/{member_id}/cards")
def issue_card(member_id: Id, page: PostedPageDep, session: SessionDep, keyring: KeyRingDep, settings: SettingsDep,
               reason: Text = "issue") -> Response:
    if reason not in ("issue", *REISSUE_REASONS):
        raise ValidationFailed("unknown reason", details=[{"field": "reason", "code": "invalid"}])
    card = cards.issue_card(session, page.require_actor(), keyring, member_id,
                            validity_years=settings.card_validity_years, list_size=settings.status_list_size,
                            reason=reason)
    return redirect(_member_url(card.member_id, "issued"))


@router.post("/cards/{card_id}/suspend")
def suspend_card(card_id: str, page: PostedPageDep, session: SessionDep, note: Text = "") -> Response:
    card = cards.suspend_card(session, page.require_actor(), card_id, note=note.strip()[:200] or None)
    return redirect(_member_url(card.member_id, "suspended"))


@router.post("/cards/{card_id}/reinstate")
def reinstate_card(card_id: str, page: PostedPageDep, session: SessionDep, note: Text = "") -> Response:
    card = cards.reinstate_card(session, page.require_actor(), card_id, note=note.strip()[:200] or None)
    return redirect(_member_url(card.member_id, "reinstated"))


@router.post("/cards/{card_id}/revoke")
def revoke_card(card_id: str, page: PostedPageDep, session: SessionDep, reason: Text = "", note: Text = ""
                ) -> Response:
    card = cards.revoke_card(session, page.require_actor(), card_id, reason=reason,
                             note=note.strip()[:200] or None)
    return redirect(_member_url(card.member_id, "revoked"))


@router.get("/cards/{card_id}/card.pdf")
def card_pdf(card_id: str, page: OfficerPageDep, session: SessionDep, settings: SettingsDep) -> Response:
    card = cards.get_card(session, page.require_actor(), card_id)
    return Response(printing.card_pdf_of(card, settings), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="card-{card.card_id}.pdf"'})


# Printing a chapter's sheets --------------------------------------------------------------------------------------


@router.get("/print")
def print_form(page: OfficerPageDep, session: SessionDep) -> Response:
    return page.render("print.html", chapters=_chapter_choices(session, page))


@router.post("/print")
def start_printing(page: PostedPageDep, session: SessionDep, scheduler: BatchSchedulerDep,
                   chapter: Text = "", subtree: Text = "") -> Response:
    chapter_id = _chapter_id(chapter)
    if chapter_id is None:
        raise ValidationFailed("choose a chapter", details=[{"field": "chapter_id", "code": "required"}])
    job = jobs.start_batch(session, page.require_actor(), chapter_id, subtree=subtree == "yes")
    scheduler.submit_batch(job.id)
    return redirect(f"{PREFIX}/jobs/{job.id}")


def _job_state(job: Job) -> str:
    """The catalogue key of a job's state: a finished job that left members without a card says so."""
    return "job.status.done_with_failures" if job.status == "done" and job.failed else f"job.status.{job.status}"


def _pace_text(page: Page, job: Job, pace: Pace) -> str:
    """The job's rate and time left in the officer's language (the time as h:mm:ss); empty for a job that issued
    nothing."""
    if pace.rate is None:
        return page.t("job.pace_unknown") if job.status in ("queued", "running") else ""
    rate = f"{pace.rate:,.0f}".replace(",", "." if page.lang == "vi" else ",")
    if job.status != "running":
        return page.t("job.pace_done", rate=rate)
    left = int(pace.seconds_left or 0)
    return page.t("job.pace", rate=rate, left=f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}")


@router.get("/jobs/{job_id}")
def job_page(job_id: Id, page: OfficerPageDep, session: SessionDep) -> Response:
    report = jobs.job_report(session, page.require_actor(), job_id)
    return page.render("job.html", job=report.job, state=_job_state(report.job), failures=report.failures,
                       pace=_pace_text(page, report.job, report.pace))


@router.get("/jobs/{job_id}/progress.json")
def job_progress(job_id: Id, page: OfficerPageDep, session: SessionDep) -> Response:
    report = jobs.job_report(session, page.require_actor(), job_id)
    job = report.job
    return JSONResponse({"status": job.status, "done": job.done, "total": job.total, "failed": job.failed,
                         "rate": report.pace.rate, "seconds_left": report.pace.seconds_left,
                         "label": page.t(_job_state(job)),
                         "progress": page.t("job.progress", done=job.done, total=job.total),
                         "pace": _pace_text(page, job, report.pace)})


@router.get("/jobs/{job_id}/sheets.pdf")
def job_sheets(job_id: Id, page: OfficerPageDep, session: SessionDep, settings: SettingsDep) -> Response:
    sheets = printing.sheets_pdf_of(jobs.job_cards(session, page.require_actor(), job_id), settings)
    return Response(sheets, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="cards-job-{job_id}.pdf"'})


# Imports ----------------------------------------------------------------------------------------------------------


@router.get("/import")
def import_form(page: OfficerPageDep, session: SessionDep) -> Response:
    return page.render("import.html", chapters=_chapter_choices(session, page), report=None)


@router.post("/import")
def import_file(page: PostedPageDep, session: SessionDep, cipher: CipherDep, settings: SettingsDep,
                keeper: UploadKeeperDep, file: Annotated[UploadFile | None, File()] = None, chapter: Text = "",
                mode: Text = "dry_run") -> Response:
    actor = page.require_actor()
    choices = _chapter_choices(session, page)
    if file is None or not file.filename:
        return page.render("import.html", status_code=422, chapters=choices, report=None,
                           error=page.t("import.no_file"), chapter=chapter)
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file exceeds {settings.max_upload_bytes} bytes")
    code = next((c["code"] for c in choices if str(c["id"]) == chapter), None)
    try:
        report = imports.import_members(session, actor, cipher, data=data, filename=file.filename,
                                        chapter_code=code, dry_run=mode != "import", keeper=keeper)
    except ValidationFailed as exc:
        headline, lines = error_messages(page.lang, exc)
        return page.render("import.html", status_code=exc.status_code, chapters=choices, report=None,
                           error=headline, error_lines=lines, chapter=chapter)
    return page.render("import.html", chapters=choices, report=report.as_dict(), chapter=chapter)


@router.get("/import/errors/{token}")
def import_errors_file(token: Annotated[str, Path(max_length=64)], page: OfficerPageDep, session: SessionDep,
                       cipher: CipherDep, keeper: UploadKeeperDep,
                       file_format: Annotated[Literal["xlsx", "csv"], Query(alias="format")] = "xlsx") -> Response:
    """The checked file back with an error column (the link on the import report); the token is random."""
    download = imports.download_errors_file(session, page.require_actor(), cipher, keeper, token, fmt=file_format,
                                            lang=page.lang)
    return Response(download.content, media_type=download.media_type, headers=download.headers)


# Events and stations ----------------------------------------------------------------------------------------------


@router.get("/events")
def event_list(page: OfficerPageDep, session: SessionDep) -> Response:
    return page.render("events.html", events=events.list_events(session, page.require_actor(), chapter_id=None,
                                                                limit=100, offset=0))


@router.get("/events/new")
def event_form(page: OfficerPageDep, session: SessionDep) -> Response:
    return page.render("event_new.html", chapters=_chapter_choices(session, page), form={}, errors=[])


def _local_datetime(value: str, field: str) -> datetime:
    text = value.strip()
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y"):
        try:
            # Officers type local (Vietnam) times.
            return datetime.strptime(text, pattern).replace(tzinfo=VIETNAM_TZ).astimezone(UTC)
        except ValueError:
            continue
    code = "required" if not text else "invalid_datetime"
    raise ValidationFailed(f"{field}: not a date and time", details=[{"field": field, "code": code}])


@router.post("/events")
def create_event(page: PostedPageDep, session: SessionDep, chapter: Text = "", title: Text = "", venue: Text = "",
                 starts_at: Text = "", ends_at: Text = "", eligibility: Text = "subtree", mode: Text = "entry",
                 allow_reentry: Text = "", live_policy: Text = "any") -> Response:
    form = {"chapter": chapter, "title": title, "venue": venue, "starts_at": starts_at, "ends_at": ends_at,
            "eligibility": eligibility, "mode": mode, "allow_reentry": allow_reentry, "live_policy": live_policy}
    try:
        chapter_id = _chapter_id(chapter)
        if chapter_id is None:
            raise ValidationFailed("choose a chapter", details=[{"field": "chapter_id", "code": "required"}])
        spec = events.EventSpec(
            chapter_id=chapter_id, title=title, venue=venue, starts_at=_local_datetime(starts_at, "starts_at"),
            ends_at=_local_datetime(ends_at, "ends_at"), eligibility=eligibility, mode=mode,
            allow_reentry=allow_reentry == "yes", live_policy=live_policy,
        )
        event = events.create_event(session, page.require_actor(), spec)
    except ValidationFailed as exc:
        headline, lines = error_messages(page.lang, exc)
        return page.render("event_new.html", status_code=422, chapters=_chapter_choices(session, page), form=form,
                           error=headline, errors=lines)
    return redirect(f"{PREFIX}/events/{event.id}")


@router.get("/events/{event_id}/stats.json")
def event_stats(event_id: Id, page: OfficerPageDep, session: SessionDep) -> Response:
    """The live count for the event page's script (same-origin, cookie session; the API wants a bearer token)."""
    stats = reports.event_stats(session, page.require_actor(), event_id)
    return JSONResponse({"eligible": stats.eligible, "checked_in": stats.checked_in, "present": stats.present,
                         "denied": stats.denied, "as_of": stats.as_of.isoformat()})

