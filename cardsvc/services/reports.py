"""Event reports: live counts, the attendance list, the denied-scan log and the offline conflicts, and their CSV /
XLSX exports.

Officers read reports of events in their scope (viewers too); an event outside the scope is 404 like a missing one.
No report names a member outside the event's scope (rows recorded before the scope was enforced may hold one).
Exports are for Vietnamese offices: Vietnamese headers and reason labels, times in Vietnam time, CSV as UTF-8 with a
BOM and CRLF line ends (what Excel's "CSV UTF-8" writes and opens without mangling accents), XLSX with real dates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Chapter, Checkin, Event, Member, Station
from cardsvc.services.checkins import MAX_CLOCK_AHEAD, MAX_SCAN_AGE, conflict_of
from cardsvc.services.context import Actor
from cardsvc.services.events import EventRules, get_event, members_in_scope, restrict_to_eligible
from verification.format import VIETNAM_TZ

Cell = str | int | datetime | None
PAYLOAD_HASH_PREFIX = 12
DATETIME_FORMAT_CSV = "%d/%m/%Y %H:%M:%S"
DATETIME_FORMAT_XLSX = "dd/mm/yyyy hh:mm:ss"
# Spreadsheets run text starting with these as a formula ("CSV injection"); such cells get a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

REASON_LABELS_VI = {
    "malformed": "Mã không đọc được",
    "unsupported_version": "Phiên bản thẻ không được hỗ trợ",
    "unknown_key": "Khóa ký không xác định",
    "bad_signature": "Chữ ký không hợp lệ",
    "not_yet_valid": "Thẻ chưa có hiệu lực",
    "expired": "Thẻ đã hết hạn",
    "revoked": "Thẻ đã bị thu hồi",
    "suspended": "Thẻ đang bị tạm dừng",
    "superseded": "Thẻ đã được thay bằng thẻ mới",
    "key_retired": "Khóa ký đã bị thu hồi",
    "event_closed": "Sự kiện đã đóng",
    "outside_window": "Ngoài giờ điểm danh",
    "not_eligible": "Không thuộc danh sách tham dự",
    "already_checked_in": "Đã điểm danh trước đó",
}
CONFLICT_LABELS_VI = {
    "accepted_at_two_stations": "Cho vào ngoại tuyến ở hai điểm quét",
    "accepted_after_revocation": "Cho vào ngoại tuyến sau khi thẻ bị thu hồi",
    "accepted_but_refused": "Cho vào ngoại tuyến nhưng máy chủ từ chối",
}
SOURCE_LABELS_VI = {
    "qr_scanner": "Máy quét QR",
    "qr_camera": "Camera",
    "nfc": "NFC",
    "manual": "Nhập tay",
}


def scan_time(scanned_at: datetime | None, received_at: datetime) -> datetime:
    """When a scan happened: the station's clock within the bounds check-in trusts, otherwise the server's."""
    if scanned_at is not None and received_at - MAX_SCAN_AGE <= scanned_at <= received_at + MAX_CLOCK_AHEAD:
        return scanned_at
    return received_at


@dataclass(frozen=True)
class ChapterStats:
    chapter_id: int
    code: str
    name: str
    eligible: int
    checked_in: int


@dataclass(frozen=True)
class EventStats:
    """Live counts. ``checked_in`` counts members with at least one accepted entry; ``present`` (entry/exit
    events only) those whose latest accepted scan is an entry."""

    event_id: int
    as_of: datetime
    eligible: int
    checked_in: int
    present: int | None
    denied: int
    denied_by_reason: dict[str, int]
    chapters: list[ChapterStats]
    conflicts: int = 0


@dataclass(frozen=True)
class AttendanceRow:
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


@dataclass(frozen=True)
class Attendance:
    """The attendance list; ``with_exit`` for entry/exit events (the list then has exit times)."""

    with_exit: bool
    rows: list[AttendanceRow]


@dataclass(frozen=True)
class DeniedScan:
    checkin_id: int
    at: datetime
    station_id: int | None
    station_name: str | None
    source: str
    reason: str
    member_number: str | None
    payload_hash_prefix: str


@dataclass(frozen=True)
class OfflineConflict:
    """A scan a station accepted offline that the server refused, with the member's first entry when it was a
    double entry."""

    checkin_id: int
    at: datetime
    station_id: int | None
    station_name: str | None
    conflict: str
    reason: str
    local_reason: str | None
    member_id: int | None
    member_number: str | None
    full_name: str | None
    first_at: datetime | None
    first_station_name: str | None
    payload_hash_prefix: str


@dataclass(frozen=True)
class Table:
    """Headers and cell rows of an export."""

    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def event_stats(session: Session, actor: Actor, event_id: int) -> EventStats:
    """Counts for the live dashboard: eligible and checked-in members in total and per chapter, denied scans by
    reason."""
    event = get_event(session, actor, event_id)
    rules = EventRules.of(event)
    eligible_rows = session.execute(
        restrict_to_eligible(
            select(Chapter.id, Chapter.code, Chapter.name, func.count(Member.id))
            .select_from(Member).join(Chapter, Chapter.id == Member.chapter_id),
            rules,
        ).group_by(Chapter.id, Chapter.code, Chapter.name)
    ).all()
    entered = (
        select(Checkin.member_id)
        .where(Checkin.event_id == event.id, Checkin.result == "ok", Checkin.direction == "in")
        .distinct().subquery()
    )
    checked_rows = session.execute(
        select(Chapter.id, Chapter.code, Chapter.name, func.count(entered.c.member_id))
        .select_from(entered).join(members_in_scope(rules), Member.id == entered.c.member_id)
        .group_by(Chapter.id, Chapter.code, Chapter.name)
    ).all()
    per_chapter: dict[int, dict[str, Any]] = {}
    for chapter_id, code, name, count in eligible_rows:
        per_chapter[chapter_id] = {"code": code, "name": name, "eligible": count, "checked_in": 0}
    for chapter_id, code, name, count in checked_rows:
        per_chapter.setdefault(chapter_id, {"code": code, "name": name, "eligible": 0, "checked_in": 0})
        per_chapter[chapter_id]["checked_in"] = count
    denied_by_reason = {
        reason or "unknown": count for reason, count in session.execute(
            select(Checkin.reason, func.count()).where(Checkin.event_id == event.id, Checkin.result == "error")
            .group_by(Checkin.reason).order_by(Checkin.reason)
        ).all()
    }
    conflicts = session.scalar(
        select(func.count()).select_from(Checkin).where(_conflict_condition(event.id))
    )
    chapters = sorted(
        (ChapterStats(chapter_id, v["code"], v["name"], v["eligible"], v["checked_in"])
         for chapter_id, v in per_chapter.items()),
        key=lambda c: c.code,
    )
    return EventStats(
        event_id=event.id, as_of=utcnow(), eligible=sum(c.eligible for c in chapters),
        checked_in=sum(c.checked_in for c in chapters),
        present=_present(session, event) if event.mode == "entry_exit" else None,
        denied=sum(denied_by_reason.values()), denied_by_reason=denied_by_reason, chapters=chapters,
        conflicts=int(conflicts or 0),
    )


def _present(session: Session, event: Event) -> int:
    latest = (
        select(Checkin.member_id, func.max(Checkin.seq).label("seq"))
        .where(Checkin.event_id == event.id, Checkin.result == "ok")
        .group_by(Checkin.member_id).subquery()
    )
    count = session.scalar(
        select(func.count()).select_from(Checkin)
        .join(latest, and_(Checkin.member_id == latest.c.member_id, Checkin.seq == latest.c.seq))
        .where(Checkin.event_id == event.id, Checkin.result == "ok", Checkin.direction == "in")
    )
    return int(count or 0)


def attendance(session: Session, actor: Actor, event_id: int) -> Attendance:
    """Members with an accepted entry, by given name: first entry (and where), last exit for entry/exit events."""
    event = get_event(session, actor, event_id)
    scans = session.execute(
        select(Checkin.member_id, Checkin.direction, Checkin.scanned_at, Checkin.received_at, Checkin.station_id,
               Station.name.label("station_name"), Member.member_number, Member.full_name,
               Chapter.code.label("chapter_code"), Chapter.name.label("chapter_name"))
        .join(members_in_scope(EventRules.of(event)), Member.id == Checkin.member_id)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .where(Checkin.event_id == event.id, Checkin.result == "ok")
        .order_by(Member.sort_key, Member.id, Checkin.seq)
    ).all()
    rows: list[AttendanceRow] = []
    for scan in scans:
        at = scan_time(scan.scanned_at, scan.received_at)
        current = rows[-1] if rows and rows[-1].member_id == scan.member_id else None
        if current is None:
            # Sequence 1 is always an entry: the first accepted scan of a member.
            rows.append(AttendanceRow(
                member_id=scan.member_id, member_number=scan.member_number, full_name=scan.full_name,
                chapter_code=scan.chapter_code, chapter_name=scan.chapter_name, first_in=at,
                station_id=scan.station_id, station_name=scan.station_name, last_out=None, entries=1,
            ))
        elif scan.direction == "out" and event.mode == "entry_exit":
            rows[-1] = replace(current, last_out=at)
        elif scan.direction == "in":
            rows[-1] = replace(current, entries=current.entries + 1)
    return Attendance(with_exit=event.mode == "entry_exit", rows=rows)


def denied_scans(session: Session, actor: Actor, event_id: int) -> list[DeniedScan]:
    """Every refused scan of the event in time order, with its reason; the member when the card was recognised."""
    event = get_event(session, actor, event_id)
    scans = session.execute(
        select(Checkin.id, Checkin.scanned_at, Checkin.received_at, Checkin.station_id,
               Station.name.label("station_name"), Checkin.source, Checkin.reason, Member.member_number,
               Checkin.payload_hash)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .outerjoin(members_in_scope(EventRules.of(event)), Member.id == Checkin.member_id)
        .where(Checkin.event_id == event.id, Checkin.result == "error")
        .order_by(Checkin.received_at, Checkin.id)
    ).all()
    return [
        DeniedScan(checkin_id=scan.id, at=scan_time(scan.scanned_at, scan.received_at), station_id=scan.station_id,
                   station_name=scan.station_name, source=scan.source, reason=scan.reason or "unknown",
                   member_number=scan.member_number, payload_hash_prefix=scan.payload_hash[:PAYLOAD_HASH_PREFIX])
        for scan in scans
    ]


def _conflict_condition(event_id: int) -> ColumnElement[bool]:
    """The rows :func:`cardsvc.services.checkins.conflict_of` calls conflicts, as a filter."""
    return and_(Checkin.event_id == event_id, Checkin.offline.is_(True), Checkin.local_result == "ok",
                Checkin.result == "error")


def offline_conflicts(session: Session, actor: Actor, event_id: int) -> list[OfflineConflict]:
    """Scans accepted offline that the server refused (a member let in at two doors, or after her card was
    revoked), in time order; for a double entry, when and where the member was first let in."""
    event = get_event(session, actor, event_id)
    scans = session.execute(
        select(Checkin.id, Checkin.scanned_at, Checkin.received_at, Checkin.station_id,
               Station.name.label("station_name"), Checkin.reason, Checkin.local_reason,
               Member.id.label("member_id"), Member.member_number, Member.full_name, Checkin.payload_hash,
               Checkin.offline, Checkin.local_result, Checkin.result)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .outerjoin(members_in_scope(EventRules.of(event)), Member.id == Checkin.member_id)
        .where(_conflict_condition(event.id))
        .order_by(Checkin.received_at, Checkin.id)
    ).all()
    first_entries = _first_entries(session, event.id, {s.member_id for s in scans if s.member_id is not None})
    rows = []
    for scan in scans:
        kind = conflict_of(scan.offline, scan.local_result, scan.result, scan.reason)
        assert kind is not None  # the query selects exactly the conflicts
        first = first_entries.get(scan.member_id) if kind == "accepted_at_two_stations" else None
        rows.append(OfflineConflict(
            checkin_id=scan.id, at=scan_time(scan.scanned_at, scan.received_at), station_id=scan.station_id,
            station_name=scan.station_name, conflict=kind, reason=scan.reason or "unknown",
            local_reason=scan.local_reason, member_id=scan.member_id, member_number=scan.member_number,
            full_name=scan.full_name, first_at=first[0] if first else None,
            first_station_name=first[1] if first else None,
            payload_hash_prefix=scan.payload_hash[:PAYLOAD_HASH_PREFIX],
        ))
    return rows


def _first_entries(session: Session, event_id: int, member_ids: set[int]) -> dict[int, tuple[datetime, str | None]]:
    """Each member's first accepted entry (time, station name)."""
    if not member_ids:
        return {}
    scans = session.execute(
        select(Checkin.member_id, Checkin.scanned_at, Checkin.received_at, Station.name)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .where(Checkin.event_id == event_id, Checkin.result == "ok", Checkin.seq == 1,
               Checkin.member_id.in_(member_ids))
    ).all()
    return {scan.member_id: (scan_time(scan.scanned_at, scan.received_at), scan.name) for scan in scans}


def stats_table(stats: EventStats) -> Table:
    rows: list[tuple[Cell, ...]] = [(c.code, c.name, c.eligible, c.checked_in) for c in stats.chapters]
    rows.append(("", "Tổng cộng", stats.eligible, stats.checked_in))
    return Table(("Mã chi hội", "Chi hội", "Đủ điều kiện", "Đã điểm danh"), rows)


def attendance_table(attendance: Attendance) -> Table:
    """The attendance export; ``Giờ ra`` (exit time) only for entry/exit events."""
    headers: tuple[str, ...] = ("Mã hội viên", "Họ và tên", "Mã chi hội", "Chi hội", "Giờ vào", "Điểm quét")
    if attendance.with_exit:
        headers += ("Giờ ra",)
    cells: list[tuple[Cell, ...]] = []
    for row in attendance.rows:
        cell: tuple[Cell, ...] = (row.member_number, row.full_name, row.chapter_code, row.chapter_name,
                                  row.first_in, row.station_name)
        cells.append((*cell, row.last_out) if attendance.with_exit else cell)
    return Table(headers, cells)


def denied_table(rows: Sequence[DeniedScan]) -> Table:
    headers: tuple[str, ...] = ("Thời gian", "Điểm quét", "Nguồn", "Lý do", "Mã lý do", "Mã hội viên",
                                "Mã băm dữ liệu quét")
    return Table(
        headers,
        [(row.at, row.station_name, SOURCE_LABELS_VI.get(row.source, row.source),
          REASON_LABELS_VI.get(row.reason, row.reason), row.reason, row.member_number, row.payload_hash_prefix)
         for row in rows],
    )


def conflicts_table(rows: Sequence[OfflineConflict]) -> Table:
    headers: tuple[str, ...] = ("Thời gian", "Điểm quét", "Loại xung đột", "Mã xung đột", "Lý do máy chủ",
                                "Mã lý do", "Mã hội viên", "Họ và tên", "Lần vào đầu", "Điểm quét lần đầu",
                                "Mã băm dữ liệu quét")
    return Table(
        headers,
        [(row.at, row.station_name, CONFLICT_LABELS_VI.get(row.conflict, row.conflict), row.conflict,
          REASON_LABELS_VI.get(row.reason, row.reason), row.reason, row.member_number, row.full_name, row.first_at,
          row.first_station_name, row.payload_hash_prefix)
         for row in rows],
    )


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM_TZ).strftime(DATETIME_FORMAT_CSV)
    if isinstance(value, int):
        return str(value)
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def to_csv(rows: Sequence[Sequence[Cell]], headers: Sequence[str]) -> bytes:
    """CSV as Excel's "CSV UTF-8" writes it: a UTF-8 BOM, comma separated, CRLF line ends.

    Times are written as ``dd/mm/yyyy HH:MM:SS`` in Vietnam time. Member numbers stay text with their leading
    zeros in the file (Excel drops them when it opens a CSV by double-click; the XLSX export keeps them).
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: Sequence[Sequence[Cell]], headers: Sequence[str], *, title: str = "Báo cáo") -> bytes:
    """An XLSX workbook: bold, frozen header row with a filter, times as Excel datetimes in Vietnam time, every
    text cell stored as text (never as a formula, and member numbers keep their leading zeros)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [len(header) for header in headers]
    for row_number, row in enumerate(rows, start=2):
        for column, value in enumerate(row, start=1):
            cell = sheet.cell(row=row_number, column=column)
            if isinstance(value, datetime):
                # Excel has no time zones: store the wall-clock time in Vietnam.
                cell.value = value.astimezone(VIETNAM_TZ).replace(tzinfo=None)
                cell.number_format = DATETIME_FORMAT_XLSX
                width = len(DATETIME_FORMAT_XLSX)
            elif isinstance(value, str):
                cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                cell.data_type = "s"
                width = len(value)
            else:
                cell.value = value
                width = len(str(value)) if value is not None else 0
            widths[column - 1] = max(widths[column - 1], width)
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = min(width + 2, 60)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()
