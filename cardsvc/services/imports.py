"""Import of member lists (CSV/XLSX): a dry-run report, or one transaction that imports every valid row.

Re-importing the same file updates members (matched on the ID-number blind index, the old ID number's index
or the member number) and never duplicates them. Rows with errors are reported and skipped; nothing else of the
file is lost or half-written, because all writes happen in one transaction after every row has been checked.
A value missing from the file (an absent column or an empty cell) keeps what is stored: a chapter's partial
list must not erase phone numbers or ID numbers that were recorded some other way.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ARRAY, ColumnElement, Integer, String, any_, insert, literal, null, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from cardsvc.db.base import UTCDateTime, utcnow
from cardsvc.db.models import Chapter, Member, MemberStatusChange
from cardsvc.errors import NotFound, ValidationFailed
from cardsvc.importing.files import ImportFileError, RawTable, read_member_table
from cardsvc.importing.rows import MemberRow, RowProblem, validate_rows
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.chapters import find_by_code
from cardsvc.services.context import Actor
from cardsvc.services.members import allocate_member_numbers, apply_member_row, problems_to_details
from cardsvc.services.pii import mask_phone, stored_value
from integrations.idnumber import mask_id_number

if TYPE_CHECKING:
    import psycopg

CHUNK = 1000
AUDIT_IDS_PER_ENTRY = 5000
ProgressCallback = Callable[[int, int], None]
"""Called with (rows done, rows in the file); the first half of the bar is validation, the second writing."""


@dataclass
class ImportReport:
    """Outcome of an import: counts per outcome and every problem by row and column.

    ``created + updated + unchanged + failed == rows_total``. Problems never contain a value from the file.
    """

    dry_run: bool
    format: str
    encoding: str | None
    rows_total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, problems in the API's ``{row, field, code, …}`` shape."""
        data = asdict(self)
        data["problems"] = problems_to_details(self.problems)
        return data

    def fail(self, problem: RowProblem) -> None:
        """Count a row as failed because of ``problem``."""
        self.problems.append(problem)
        self.failed += 1


def _problem(row: int, column: str, code: str, en: str, vi: str) -> RowProblem:
    return RowProblem(row=row, column=column, code=code, message_en=en, message_vi=vi, severity="error")


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class _Planned:
    row: MemberRow
    chapter: Chapter
    id_index: str | None
    old_index: str | None
    existing: Member | None = None


def import_members(
    session: Session,
    actor: Actor,
    cipher: PiiCipher,
    *,
    data: bytes,
    filename: str,
    chapter_code: str | None,
    dry_run: bool,
    progress: ProgressCallback | None = None,
    today: date | None = None,
) -> ImportReport:
    """Check a member file and, unless ``dry_run``, import its valid rows in one transaction.

    Args:
        data: the file's bytes (XLSX or CSV/TSV text; see :func:`cardsvc.importing.files.read_member_table`).
        filename: the name the user gave the file; only used to recognise formats. (People name files after a
            member or her ID number: the audit entries identify the file by the SHA-256 of its bytes instead.)
        chapter_code: chapter for rows without a chapter column value (current or former code).
        dry_run: check everything and report what would happen, writing nothing.
        progress: optional callback for a progress bar.
        today: the date against which birth and join dates are checked (default: the current date).

    Returns:
        The :class:`ImportReport`.

    Raises:
        PermissionDenied: the actor may only read.
        NotFound: ``chapter_code`` is unknown or outside the actor's scope.
        ValidationFailed: the file cannot be read at all (empty, damaged, unsupported format, too large).
    """
    actor.require_write()
    day = today or date.today()
    default_chapter = find_by_code(session, actor, chapter_code).chapter if chapter_code else None
    table = _read_table(data, filename)
    total = len(table.rows)
    report = ImportReport(dry_run=dry_run, format=table.format, encoding=table.encoding, rows_total=total,
                          ignored_columns=list(table.ignored_columns))
    chapters = _ChapterResolver(session, actor, default_chapter)
    planned: list[_Planned] = []
    for done, (row, problems) in enumerate(validate_rows(table.rows, today=day), start=1):
        report.problems.extend(problems)
        if progress and done % CHUNK == 0:
            progress(done // 2, total)
        if row is None:
            report.failed += 1
            continue
        chapter = chapters.chapter_for(row)
        if isinstance(chapter, RowProblem):
            report.fail(chapter)
            continue
        planned.append(_Planned(
            row=row, chapter=chapter,
            id_index=cipher.blind_index("id_number", row.id_number) if row.id_number else None,
            old_index=cipher.blind_index("old_id_number", row.old_id_number) if row.old_id_number else None,
        ))
    planned = _match_existing(session, actor, planned, report)
    creates = [p for p in planned if p.existing is None]
    report.created = len(creates)
    changed_by_chapter = _apply_updates(cipher, [p for p in planned if p.existing is not None],
                                        frozenset(table.columns), report)
    if dry_run:
        # The updates above were only applied to loaded objects so that they could be counted; nothing was
        # flushed, and the rollback discards them.
        session.rollback()
    else:
        created_by_chapter = _insert_new(session, cipher, creates, officer_id=actor.id, today=day, total=total,
                                         progress=progress)
        _audit(session, actor, hashlib.sha256(data).hexdigest(), report, default_chapter,
               {"member.import_create": created_by_chapter, "member.import_update": changed_by_chapter})
        session.commit()
    if progress:
        progress(total, total)
    report.problems.sort(key=lambda p: p.row)
    return report


def _read_table(data: bytes, filename: str) -> RawTable:
    try:
        return read_member_table(data, filename)
    except ImportFileError as exc:
        raise ValidationFailed(exc.message_en, code=exc.code,
                               details=[{"code": exc.code, "message": exc.message_en,
                                         "message_vi": exc.message_vi}]) from exc


class _ChapterResolver:
    """The chapter of each row: its own chapter code (resolved once per code, within scope) or the default."""

    def __init__(self, session: Session, actor: Actor, default: Chapter | None) -> None:
        self._session = session
        self._actor = actor
        self._default = default
        self._by_code: dict[str, Chapter | None] = {}

    def chapter_for(self, row: MemberRow) -> Chapter | RowProblem:
        if not row.chapter_code:
            if self._default is None:
                return _problem(row.row, "chapter_code", "missing_chapter",
                                "No chapter: fill the chapter column or choose a chapter for the whole file.",
                                "Thiếu chi hội: điền cột mã chi hội hoặc chọn chi hội cho cả tệp.")
            return self._default
        code = row.chapter_code.strip().upper()
        if code not in self._by_code:
            try:
                self._by_code[code] = find_by_code(self._session, self._actor, code).chapter
            except NotFound:
                self._by_code[code] = None
        found = self._by_code[code]
        if found is None:
            # One message for unknown and out-of-scope codes, so that scope leaks nothing.
            return _problem(row.row, "chapter_code", "unknown_chapter",
                            "Unknown chapter code, or a chapter outside your scope.",
                            "Mã chi hội không tồn tại hoặc ngoài phạm vi quản lý của bạn.")
        return found


def _one_of(session: Session, column: InstrumentedAttribute[Any], values: list[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as ``= ANY(:array)``, one parameter instead of one per value.

    psycopg scans every placeholder of a statement in Python: with 1,000-value IN lists this took longer than
    the database's own work for the chunk.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(String)))
    return column.in_(values)


def _match_existing(session: Session, actor: Actor, planned: list[_Planned], report: ImportReport
                    ) -> list[_Planned]:
    """Find members already registered (by either ID number or the member number), in chunks.

    Returns the rows that may be written, each with the member it updates (or None for a new member); the
    others are reported as failed.
    """
    by_id: dict[str, Member] = {}
    by_old: dict[str, Member] = {}
    by_number: dict[str, Member] = {}
    for chunk in _chunks(planned):
        id_keys = [p.id_index for p in chunk if p.id_index]
        old_keys = [p.old_index for p in chunk if p.old_index]
        numbers = [p.row.member_number for p in chunk if p.row.member_number]
        conditions = []
        if id_keys:
            conditions.append(_one_of(session, Member.id_number_index, id_keys))
        if old_keys:
            conditions.append(_one_of(session, Member.old_id_number_index, old_keys))
        if numbers:
            conditions.append(_one_of(session, Member.member_number, numbers))
        if not conditions:
            continue
        for member in session.scalars(select(Member).where(or_(*conditions))):
            if member.id_number_index:
                by_id[member.id_number_index] = member
            if member.old_id_number_index:
                by_old[member.old_id_number_index] = member
            by_number[member.member_number] = member
    if not by_number:
        return planned  # Nobody in the file is registered yet (a first import): every row is new.
    kept: list[_Planned] = []
    # Rows of the file that already claimed a registered member, by member id.
    claimed: dict[int, int] = {}
    for plan in planned:
        number = plan.row.row
        found = [m for m in (by_id.get(plan.id_index or ""), by_old.get(plan.old_index or ""),
                             by_number.get(plan.row.member_number or "")) if m is not None]
        if len({m.id for m in found}) > 1:
            report.fail(_problem(
                number, "", "ambiguous_match",
                "The ID number and the member number belong to two different registered members.",
                "Số định danh và mã hội viên thuộc về hai hội viên khác nhau đã đăng ký.",
            ))
            continue
        existing = found[0] if found else None
        if existing is None:
            kept.append(plan)
            continue
        if not actor.sees(existing.chapter.path):
            report.fail(_problem(
                number, "id_number", "member_outside_scope",
                "This person is already registered in a chapter outside your scope; ask that chapter to "
                "transfer her.",
                "Người này đã là hội viên ở chi hội ngoài phạm vi của bạn; "
                "hãy đề nghị chi hội đó chuyển sinh hoạt.",
            ))
            continue
        if plan.row.member_number and existing.member_number != plan.row.member_number:
            report.fail(_problem(
                number, "member_number", "member_number_mismatch",
                "The member number differs from the one registered for this ID number.",
                "Mã hội viên khác với mã đã đăng ký cho số định danh này.",
            ))
            continue
        earlier = claimed.setdefault(existing.id, number)
        if earlier != number:
            # Two rows with different keys (e.g. one by ID number, one by member number) for the same person:
            # applying both would silently keep whichever came last.
            report.fail(_problem(
                number, "", "duplicate_in_file",
                f"Same registered member as row {earlier} (duplicate of row {earlier}).",
                f"Trùng hội viên đã đăng ký với dòng {earlier}.",
            ))
            continue
        plan.existing = existing
        kept.append(plan)
    return kept


def _with_stored_values(row: MemberRow, member: Member, columns: frozenset[str], cipher: PiiCipher) -> MemberRow:
    """``row`` with every value the file does not give replaced by the stored one (see the module docstring)."""
    keep: dict[str, Any] = {}
    if row.phone is None and member.phone_ciphertext is not None:
        keep["phone"] = stored_value(member, "phone", cipher)
    if row.join_date is None and member.join_date is not None:
        keep["join_date"] = member.join_date
    if row.id_number is None and member.id_number_ciphertext is not None:
        keep["id_number"] = cipher.decrypt("id_number", member.id_number_ciphertext)
    if row.old_id_number is None and member.old_id_number_ciphertext is not None:
        keep["old_id_number"] = cipher.decrypt("old_id_number", member.old_id_number_ciphertext)
    if "honorary" not in columns:
        keep["honorary"] = member.honorary
    # A list that only knows the birth year must not lose the full birth date recorded for the same year.
    if (row.birth_date_precision == "year" and member.birth_date_precision == "day"
            and member.birth_date.year == row.birth_date.year):
        keep["birth_date"] = member.birth_date
        keep["birth_date_precision"] = "day"
    return dataclasses.replace(row, **keep) if keep else row


def _apply_updates(cipher: PiiCipher, updates: list[_Planned], columns: frozenset[str], report: ImportReport
                   ) -> dict[str, list[int]]:
    """Apply matched rows to their members (moving them to the row's chapter); return changed ids by path."""
    changed_by_chapter: dict[str, list[int]] = defaultdict(list)
    for plan in updates:
        member = plan.existing
        assert member is not None
        changed = apply_member_row(member, _with_stored_values(plan.row, member, columns, cipher), cipher)
        if member.chapter_id != plan.chapter.id:
            member.chapter_id = plan.chapter.id
            changed.append("chapter_id")
        if changed:
            report.updated += 1
            changed_by_chapter[plan.chapter.path].append(member.id)
        else:
            report.unchanged += 1
    return changed_by_chapter


def _new_member_numbers(session: Session, count: int, reserved: set[str]) -> list[str]:
    """``count`` fresh member numbers, none of them among ``reserved`` (numbers the file itself brings)."""
    numbers: list[str] = []
    while len(numbers) < count:
        numbers += [n for n in allocate_member_numbers(session, count - len(numbers)) if n not in reserved]
    return numbers


def _insert_new(
    session: Session,
    cipher: PiiCipher,
    creates: list[_Planned],
    *,
    officer_id: int | None,
    today: date,
    total: int,
    progress: ProgressCallback | None,
) -> dict[str, list[int]]:
    """Insert new members set-wise, a chunk at a time, with their first status row; return their ids by path.

    Each chunk is one bulk insert without RETURNING (see :func:`_insert_members`), then one indexed SELECT of the
    new ids by member number and one INSERT … SELECT of the status rows on the server. ``INSERT … RETURNING`` in
    parameter order was measured at half the speed of a plain insert on PostgreSQL (psycopg re-parses each
    19,000-parameter statement), and building ORM objects per row cost as much as the insert itself.
    """
    created_by_chapter: dict[str, list[int]] = defaultdict(list)
    reserved = {p.row.member_number for p in creates if p.row.member_number}
    path_of = {p.chapter.id: p.chapter.path for p in creates}
    names: dict[str, tuple[str, str]] = {}
    written = 0
    for chunk in _chunks(creates):
        # Numbers are reserved a chunk at a time: the check for numbers already taken is one IN list, and a
        # single list for 100,000 rows exceeds the parameter limits of PostgreSQL (65,535) and SQLite.
        numbers = iter(_new_member_numbers(session, sum(1 for p in chunk if not p.row.member_number), reserved))
        values = [_new_member_values(plan, plan.row.member_number or next(numbers), cipher, today, names)
                  for plan in chunk]
        _insert_members(session, values)
        in_chunk = _one_of(session, Member.member_number, [row["member_number"] for row in values])
        for member_id, chapter_id in session.execute(
            select(Member.id, Member.chapter_id).where(in_chunk).order_by(Member.id)
        ):
            created_by_chapter[path_of[chapter_id]].append(member_id)
        session.execute(insert(MemberStatusChange).from_select(
            ["member_id", "from_status", "to_status", "effective_on", "officer_id", "created_at"],
            select(Member.id, null(), literal("active"), Member.status_changed_on, literal(officer_id, Integer),
                   literal(utcnow(), UTCDateTime)).where(in_chunk),
        ))
        written += len(chunk)
        if progress:
            progress(total // 2 + (total - total // 2) * written // len(creates), total)
    return created_by_chapter


def _insert_members(session: Session, values: list[dict[str, Any]]) -> None:
    """Insert member rows: with COPY on PostgreSQL, an executemany INSERT elsewhere.

    COPY skips the per-row statement round trip and SQLAlchemy's per-row parameter processing; it checks the
    same constraints and indexes, and runs inside the import's transaction like any other statement.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(Member), values)
        return
    columns = list(values[0])
    driver_connection = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    statement = f"COPY members ({', '.join(columns)}) FROM STDIN"
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in values:
            copy.write_row([row[column] for column in columns])


def _name_keys(full_name: str, cache: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """Search and sort keys of a name, computed once per distinct name (lists repeat common names a lot)."""
    keys = cache.get(full_name)
    if keys is None:
        keys = cache[full_name] = (name_search_key(full_name), given_name_sort_key(full_name))
    return keys


def _new_member_values(
    plan: _Planned, member_number: str, cipher: PiiCipher, today: date, names: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """Column values of a new member: what :func:`apply_member_row` sets on an ORM object, without building one
    (``tests/test_imports.py`` checks that both give the same row)."""
    row = plan.row
    now = utcnow()
    name_search, sort_key = _name_keys(row.full_name, names)
    return {
        "member_number": member_number, "full_name": row.full_name, "name_search": name_search,
        "sort_key": sort_key, "birth_date": row.birth_date,
        "birth_date_precision": row.birth_date_precision, "gender": row.gender,
        "id_number_ciphertext": cipher.encrypt("id_number", row.id_number) if row.id_number else None,
        "id_number_index": plan.id_index,
        "id_number_masked": mask_id_number(row.id_number) if row.id_number else None,
        "old_id_number_ciphertext": cipher.encrypt("old_id_number", row.old_id_number) if row.old_id_number
        else None,
        "old_id_number_index": plan.old_index,
        "old_id_number_masked": mask_id_number(row.old_id_number) if row.old_id_number else None,
        "phone_ciphertext": cipher.encrypt("phone", row.phone) if row.phone else None,
        "phone_index": cipher.blind_index("phone", row.phone) if row.phone else None,
        "phone_masked": mask_phone(row.phone) if row.phone else None,
        "chapter_id": plan.chapter.id, "join_date": row.join_date, "status": "active",
        "status_changed_on": row.join_date or today, "honorary": row.honorary, "created_at": now, "updated_at": now,
    }


def _audit(
    session: Session,
    actor: Actor,
    file_sha256: str,
    report: ImportReport,
    default_chapter: Chapter | None,
    ids_by_action: dict[str, dict[str, list[int]]],
) -> None:
    """One summary entry, plus entries listing the created and the updated member ids per chapter."""
    for action, groups in ids_by_action.items():
        for path, member_ids in groups.items():
            for ids in _chunks(member_ids, AUDIT_IDS_PER_ENTRY):
                audit.record(session, actor, action, target_type="member", target_id=None, chapter_path=path,
                             details={"member_ids": list(ids), "file_sha256": file_sha256})
    audit.record(session, actor, "member.import", target_type="import", target_id=None,
                 chapter_path=default_chapter.path if default_chapter else actor.scope_path,
                 details={"file_sha256": file_sha256, "rows": report.rows_total, "created": report.created,
                          "updated": report.updated, "unchanged": report.unchanged, "failed": report.failed})

