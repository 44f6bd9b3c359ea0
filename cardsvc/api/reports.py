"""Event bundles for door stations, and event reports (live counts, attendance, denied scans, offline conflicts)
with downloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from cardsvc.api.deps import CallerDep, KeyRingDep, OfficerDep, SessionDep, SettingsDep, StatusCacheDep
from cardsvc.api.schemas import Id
from cardsvc.services import bundles, reports

router = APIRouter(prefix="/v1", tags=["reports"])

ExportFormat = Literal["json", "csv", "xlsx"]
FormatQuery = Annotated[ExportFormat, Query(alias="format", description="json (default), csv or xlsx")]
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
DOWNLOADS: dict[int | str, dict[str, Any]] = {200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}}
# Reports and bundles hold names of members: no shared cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


class ChapterStatsOut(BaseModel):
    chapter_id: int
    code: str
    name: str
    eligible: int
    checked_in: int


class EventStatsOut(BaseModel):
    event_id: int
    as_of: datetime
    eligible: int
    checked_in: int
    present: int | None
    denied: int
    denied_by_reason: dict[str, int]
    chapters: list[ChapterStatsOut]
    conflicts: int


class AttendanceOut(BaseModel):
    member_id: int
    member_number: str
    full_name: str
    chapter_code: str
    chapter_name: str
    first_in: datetime
    station_id: int | None
    station_name: str | None
    last_out: datetime | None
    entries: int


class DeniedScanOut(BaseModel):
    checkin_id: int
    at: datetime
    station_id: int | None
    station_name: str | None
    source: str
    reason: str
    member_number: str | None
    payload_hash_prefix: str


class OfflineConflictOut(BaseModel):
    checkin_id: int
    at: datetime
    station_id: int | None
    station_name: str | None
    conflict: Literal["accepted_at_two_stations", "accepted_after_revocation", "accepted_but_refused"]
    reason: str
    local_reason: str | None
    member_id: int | None
    member_number: str | None
    full_name: str | None
    first_at: datetime | None
    first_station_name: str | None
    payload_hash_prefix: str


def download(table: reports.Table, export: ExportFormat, name: str, *, title: str) -> Response:
    """An export as a file to save (``name.csv`` or ``name.xlsx``), never kept by a shared cache."""
    if export == "csv":
        body = reports.to_csv(table.rows, table.headers)
    else:
        body = reports.to_xlsx(table.rows, table.headers, title=title)
    return Response(body, media_type=MEDIA_TYPES[export],
                    headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}.{export}"'})


@router.get("/events/{event_id}/bundle", response_class=Response,
            responses={200: {"content": {"application/jwt": {}}}})
def event_bundle(event_id: Id, caller: CallerDep, session: SessionDep, keyring: KeyRingDep, settings: SettingsDep,
                 status_cache: StatusCacheDep) -> Response:
    """The signed offline bundle for a door station: trust bundle, status lists, eligible roster (no ID numbers)
    and check-ins so far. For the event's own stations (device token) and officers in scope."""
    token = bundles.event_bundle(session, caller, event_id, keyring=keyring, settings=settings,
                                 status_cache=status_cache)
    return Response(token, media_type="application/jwt", headers=NO_STORE)


@router.get("/events/{event_id}/stats", response_model=EventStatsOut, responses=DOWNLOADS)
def event_stats(event_id: Id, actor: OfficerDep, session: SessionDep, response: Response,
                export: FormatQuery = "json") -> EventStatsOut | Response:
    """Live counts: eligible and checked-in members (in total and per chapter), denied scans by reason."""
    stats = reports.event_stats(session, actor, event_id)
    if export != "json":
        return download(reports.stats_table(stats), export, f"event-{event_id}-stats", title="Thống kê")
    response.headers.update(NO_STORE)
    return EventStatsOut(
        event_id=stats.event_id, as_of=stats.as_of, eligible=stats.eligible, checked_in=stats.checked_in,
        present=stats.present, denied=stats.denied, denied_by_reason=stats.denied_by_reason,
        chapters=[ChapterStatsOut.model_validate(c, from_attributes=True) for c in stats.chapters],
        conflicts=stats.conflicts,
    )


@router.get("/events/{event_id}/attendance", response_model=list[AttendanceOut], responses=DOWNLOADS)
def attendance(event_id: Id, actor: OfficerDep, session: SessionDep, response: Response,
               export: FormatQuery = "json") -> list[AttendanceOut] | Response:
    """Members who entered, by given name: first entry and its station, last exit for entry/exit events."""
    listing = reports.attendance(session, actor, event_id)
    if export != "json":
        return download(reports.attendance_table(listing), export, f"event-{event_id}-attendance",
                         title="Điểm danh")
    response.headers.update(NO_STORE)
    return [AttendanceOut.model_validate(row, from_attributes=True) for row in listing.rows]


@router.get("/events/{event_id}/denied", response_model=list[DeniedScanOut], responses=DOWNLOADS)
def denied_scans(event_id: Id, actor: OfficerDep, session: SessionDep, response: Response,
                 export: FormatQuery = "json") -> list[DeniedScanOut] | Response:
    """Every refused scan in time order: station, source, reason, the member when recognised, payload hash
    prefix (the payload itself is never stored)."""
    rows = reports.denied_scans(session, actor, event_id)
    if export != "json":
        return download(reports.denied_table(rows), export, f"event-{event_id}-denied", title="Quét bị từ chối")
    response.headers.update(NO_STORE)
    return [DeniedScanOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/events/{event_id}/conflicts", response_model=list[OfflineConflictOut], responses=DOWNLOADS)
def offline_conflicts(event_id: Id, actor: OfficerDep, session: SessionDep, response: Response,
                      export: FormatQuery = "json") -> list[OfflineConflictOut] | Response:
    """Scans a station accepted offline that the server refused: a member let in at two stations
    (``accepted_at_two_stations``, with her first entry), after her card was revoked (``accepted_after_revocation``),
    or refused for another reason (``accepted_but_refused``)."""
    rows = reports.offline_conflicts(session, actor, event_id)
    if export != "json":
        return download(reports.conflicts_table(rows), export, f"event-{event_id}-conflicts",
                         title="Xung đột ngoại tuyến")
    response.headers.update(NO_STORE)
    return [OfflineConflictOut.model_validate(row, from_attributes=True) for row in rows]
