"""The event page and what an officer does there on the day of an event.

Set up stations (a QR, a tappable link and the bare code, built from the address the officer is using, with a
warning when a phone could not use it), check a member in by hand with a reason, invite members to an invite-only
event (found by search, pasted numbers, an uploaded list), download the attendance list and the refused scans, and
hand an NFC tag write to a station. Each action calls the same service function as the API, so scope, permissions
and audit entries are the API's.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from cardsvc.addresses import address_problems, public_base_url
from cardsvc.api.deps import CipherDep, SessionDep, SettingsDep, limit_checkin_rate
from cardsvc.api.reports import download
from cardsvc.api.schemas import Id
from cardsvc.errors import PayloadTooLarge, ValidationFailed
from cardsvc.importing.numbers import member_numbers_in_file, member_numbers_in_text
from cardsvc.services import checkins, events, members, nfc_writes, reports, stations
from cardsvc.services.stations import provisioning_url
from cardsvc.tls import authority_certificate
from cardsvc.web.admin.context import (
    PREFIX,
    OfficerPageDep,
    Page,
    PageRoute,
    PostedPageDep,
    answer_once,
    error_messages,
    member_query,
    redirect,
)
from cardsvc.web.admin.i18n import translate
from cardsvc.web.admin.qr import text_qr_svg
from integrations.errors import InputError

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)

Text = Annotated[str, Form(max_length=500)]
SEARCH_LIMIT = 20
RECENT_WRITES = 5
MANUAL_REASONS = ("forgot_card", "unreadable", "no_card", "other")
DONE_MESSAGES = frozenset({"nfc_requested"})
# The form's nonce is per page and member: submitting twice (a double tap, a reload) is one check-in.
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,24}-[0-9]{1,19}$")
Export = Literal["csv", "xlsx"]


def event_page(page: Page, session: SessionDep, cipher: CipherDep, event_id: int, *, q: str = "",
               status_code: int = 200, **context: Any) -> Response:
    """The event page: counts, check-in window, stations (with their recent NFC writes), the member search of manual
    check-in and invitations, and whatever the answered form adds (``context``)."""
    actor = page.require_actor()
    event = events.get_event(session, actor, event_id)
    station_list = stations.list_stations(session, actor, event.id)
    writes = {station.id: nfc_writes.list_writes(session, actor, event.id, station.id)[:RECENT_WRITES]
              for station in station_list if station.status == "active"}
    text = q.strip()
    found = members.search_members(session, actor, cipher, member_query(text, limit=SEARCH_LIMIT)) if text else None
    base_url = public_base_url(page.request)
    settings = page.request.app.state.settings
    return page.render(
        "event.html", status_code=status_code, event=event, stats=reports.event_stats(session, actor, event.id),
        stations=station_list, writes=writes, q=text, found=found, nonce=secrets.token_urlsafe(12),
        manual_reasons=MANUAL_REASONS, base_url=base_url, address_problems=address_problems(base_url),
        tls_help=base_url.startswith("https://") and authority_certificate(settings.tls_dir) is not None,
        **context,
    )


@router.get("/events/{event_id}")
def event_detail(event_id: Id, page: OfficerPageDep, session: SessionDep, cipher: CipherDep,
                 q: Annotated[str, Query(max_length=100)] = "",
                 done: Annotated[str, Query(max_length=20)] = "") -> Response:
    return event_page(page, session, cipher, event_id, q=q, done=done if done in DONE_MESSAGES else None)


@router.post("/events/{event_id}/stations")
def register_station(event_id: Id, page: PostedPageDep, session: SessionDep, cipher: CipherDep,
                     name: Text = "") -> Response:
    """Shows the one-time set-up code (QR, link and code) on the answer itself: it is never stored, so there is no
    page to redirect to."""
    try:
        registration = stations.register_station(session, page.require_actor(), event_id, name)
    except ValidationFailed as exc:
        headline, _lines = error_messages(page.lang, exc)
        return event_page(page, session, cipher, event_id, status_code=422, station_error=headline)
    url = provisioning_url(public_base_url(page.request), registration.provisioning_code)
    # The code works for 24 hours.
    return answer_once(event_page(page, session, cipher, event_id, registered=registration.station,
                                  provisioning_url=url, provisioning_code=registration.provisioning_code,
                                  provisioning_qr=text_qr_svg(url, page.t("stations.qr_label"))))


def _manual_reason(reason: str, note: str) -> str:
    """The reason as stored with the check-in: the chosen reason in Vietnamese (what auditors read), and the note."""
    clean = " ".join(note.split())[:150]
    if reason not in MANUAL_REASONS or (reason == "other" and not clean):
        raise ValidationFailed("choose a reason (and write one for 'other')",
                               details=[{"field": "manual_reason", "code": "required"}])
    label = translate("vi", f"manual.reason.{reason}")
    return f"{label}: {clean}" if clean else label


@router.post("/events/{event_id}/checkins")
def manual_checkin(event_id: Id, page: PostedPageDep, session: SessionDep, cipher: CipherDep, member: Text = "",
                   reason: Text = "", note: Text = "", nonce: Text = "", q: Text = "") -> Response:
    """A manual check-in (a member found by search, with a reason): the API's officer check-in, audited."""
    actor = page.require_actor()
    try:
        if not member.isdigit():
            raise ValidationFailed("choose the member", details=[{"field": "member_id", "code": "required"}])
        manual_reason = _manual_reason(reason, note)
    except ValidationFailed as exc:
        headline, lines = error_messages(page.lang, exc)
        return event_page(page, session, cipher, event_id, q=q, status_code=422, checkin_error=headline,
                          checkin_error_lines=lines)
    limit_checkin_rate(page.request, officer_id=actor.id)
    client_nonce = f"admin-{nonce}" if _NONCE.fullmatch(nonce) else f"admin-{secrets.token_urlsafe(16)}"
    result = checkins.checkin(session, actor, event_id, checkins.CheckinRequest(
        source="manual", client_nonce=client_nonce, member_id=int(member), manual_reason=manual_reason))
    if not result.replayed:
        page.request.app.state.metrics.observe_checkin(result=result.checkin.result, reason=result.checkin.reason,
                                                       source=result.checkin.source)
    return answer_once(event_page(page, session, cipher, event_id, q=q, checkin=result))


@router.post("/events/{event_id}/invites")
def invite_member(event_id: Id, page: PostedPageDep, session: SessionDep, cipher: CipherDep, member: Text = "",
                  q: Text = "") -> Response:
    """Invite one member found by the page's search."""
    if not member.isdigit():
        raise ValidationFailed("choose the member", details=[{"field": "member_id", "code": "required"}])
    invited = events.invite(session, page.require_actor(), event_id, [int(member)])
    return answer_once(event_page(page, session, cipher, event_id, q=q,
                                  invite_report=events.InviteReport(invited, 1 - invited, [])))


@router.post("/events/{event_id}/invites/list")
def invite_list(event_id: Id, page: PostedPageDep, session: SessionDep, cipher: CipherDep, settings: SettingsDep,
                numbers: Annotated[str, Form(max_length=100_000)] = "",
                file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Invite the members whose numbers were pasted or are in an uploaded list (Excel or CSV)."""
    actor = page.require_actor()
    found = member_numbers_in_text(numbers)
    try:
        if file is not None and file.filename:
            data = file.file.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise PayloadTooLarge(f"the file exceeds {settings.max_upload_bytes} bytes")
            found += member_numbers_in_file(data)
        report = events.invite_member_numbers(session, actor, event_id, found)
    except InputError as exc:
        return event_page(page, session, cipher, event_id, status_code=422,
                          invite_error=exc.message_vi if page.lang == "vi" else str(exc))
    except ValidationFailed as exc:
        headline, lines = (page.t("invites.no_numbers"), []) if not found else error_messages(page.lang, exc)
        return event_page(page, session, cipher, event_id, status_code=422, invite_error=headline,
                          invite_error_lines=lines, invite_numbers=numbers)
    return answer_once(event_page(page, session, cipher, event_id, invite_report=report))


@router.get("/events/{event_id}/attendance.{export}")
def attendance_download(event_id: Id, export: Export, page: OfficerPageDep, session: SessionDep) -> Response:
    listing = reports.attendance(session, page.require_actor(), event_id)
    return download(reports.attendance_table(listing), export, f"event-{event_id}-attendance", title="Điểm danh")


@router.get("/events/{event_id}/denied.{export}")
def denied_download(event_id: Id, export: Export, page: OfficerPageDep, session: SessionDep) -> Response:
    rows = reports.denied_scans(session, page.require_actor(), event_id)
    return download(reports.denied_table(rows), export, f"event-{event_id}-denied", title="Quét bị từ chối")


@router.post("/events/{event_id}/stations/{station_id}/nfc-writes")
def request_nfc_write(event_id: Id, station_id: Id, page: PostedPageDep, session: SessionDep, member: Text = "",
                      lock: Text = "") -> Response:
    """Hand the member's current card to a station to write on the next blank tag put on its reader."""
    nfc_writes.request_write_for_member(session, page.require_actor(), event_id, station_id, member,
                                        lock=lock == "yes")
    return redirect(f"{PREFIX}/events/{event_id}?done=nfc_requested#station-{station_id}")
