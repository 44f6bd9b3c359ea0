"""Import of member lists (CSV/XLSX): a dry-run report, or one transaction that imports every valid row.

Re-importing the same file updates members (matched on the ID-number blind index, the old ID number's index
or the member number) and never duplicates them. Rows with errors are reported and skipped; nothing else of the
file is lost or half-written, because all writes happen in one transaction after every row has been checked.
A value missing from the file (an absent column or an empty cell) keeps what is stored: a chapter's partial
list must not erase phone numbers or ID numbers that were recorded some other way. A list keyed by member number,
without ID numbers, updates the members it names.

A row matching a member outside the import's chapter is a conflict, never a move; a new row that looks like a
registered member identified differently (her old CMND number on one list, her CCCD number on the other) is
imported and listed as a probable duplicate, for an officer to merge (:mod:`cardsvc.services.merges`).

The report counts each kind of problem and lists its first rows (:mod:`cardsvc.importing.report`); the complete
list goes into the file given back with an error column (:func:`download_errors_file`, from an upload kept for a
few minutes by :mod:`cardsvc.services.kept_uploads`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from sqlalchemy import ARRAY, ColumnElement, Integer, String, any_, insert, literal, null, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from cardsvc.days import vietnam_today
from cardsvc.db.base import UTCDateTime, utcnow
from cardsvc.db.models import Chapter, Member, MemberStatusChange
from cardsvc.errors import NotFound, ValidationFailed
from cardsvc.importing.errors_file import MEDIA_TYPES, ErrorsFormat, errors_file, errors_file_name
from cardsvc.importing.files import RawTable, read_member_table
from cardsvc.importing.report import ColumnLabels, capped_problems, problem_counts, skipped_counts
from cardsvc.importing.rows import MemberRow, RowProblem, validate_rows
from cardsvc.normalize import fold, given_name_sort_key, name_search_key
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.chapters import find_by_code
from cardsvc.services.context import Actor
from cardsvc.services.kept_uploads import KeptUpload, UploadKeeper
from cardsvc.services.members import allocate_member_numbers, apply_member_row
from cardsvc.services.merges import numbers_compatible
from cardsvc.services.pii import mask_phone, stored_value
from integrations.errors import InputError
from integrations.idnumber import mask_id_number

if TYPE_CHECKING:
    import psycopg

CHUNK = 1000
AUDIT_IDS_PER_ENTRY = 5000
ProgressCallback = Callable[[int, int], None]
"""Called with (rows done, rows in the file); the first half of the bar is validation, the second writing."""


@dataclass(frozen=True)
class MemberBrief:
    """A registered member a report row is about; only ever one the importing officer may see."""

    member_id: int
    member_number: str
    full_name: str
    chapter_code: str
    chapter_name: str

    @classmethod
    def of(cls, member: Member) -> MemberBrief:
        return cls(member.id, member.member_number, member.full_name, member.chapter.code, member.chapter.name)


@dataclass(frozen=True)
class ImportConflict:
    """A row that matched a member outside the import's chapter: not applied, for an officer responsible for both
    chapters to decide. ``member`` is None when she is outside the importing officer's scope too: then the report
    says nothing about who she is or where."""

    row: int
    code: str
    member: MemberBrief | None


@dataclass(frozen=True)
class ProbableDuplicate:
    """A row that makes a new member with the name, birth date and chapter of a registered one, and no ID number
    that contradicts hers (see :mod:`cardsvc.services.merges`): probably one woman, to check and merge.
    ``new_member_id`` is the member the row created (None in a dry run)."""

    row: int
    registered: MemberBrief
    new_member_id: int | None


@dataclass
class ImportReport:
    """Outcome of an import: counts per outcome and every problem by row and column.

    ``created + updated + unchanged + failed == rows_total``; conflicts count as failed. Problems never contain a
    value from the file. ``table`` is the file as read (for the file given back with its errors); ``errors_file``
    the token and expiry of the kept upload, when there is one.
    """

    dry_run: bool
    format: str
    encoding: str | None
    table: RawTable = field(repr=False)
    rows_total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    conflicts: list[ImportConflict] = field(default_factory=list)
    duplicates: list[ProbableDuplicate] = field(default_factory=list)
    errors_file: tuple[str, datetime] | None = None

    @property
    def labels(self) -> ColumnLabels:
        """The file's header text and column letter of each field."""
        return ColumnLabels(self.table.columns, self.table.letters)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: counts, the file's columns and skipped rows, each kind of problem with
        its count and first rows, and the first problems of each kind in the API's ``{row, field, …}`` shape."""
        labels = self.labels
        # The other fields as dataclasses.asdict gives them (without copying the whole file along with them).
        data = {item.name: _json_ready(getattr(self, item.name)) for item in fields(self)
                if item.name not in ("table", "problems", "errors_file")}
        return data | {
            "header_row": self.table.header_row,
            "columns": [{"field": name, "header": header, "letter": labels.letters[name]}
                        for name, header in labels.headers.items()],
            "skipped_rows": skipped_counts(self.table.skipped, self.table.blank_rows),
            "problem_counts": problem_counts(self.problems, labels),
            "problems_total": len(self.problems),
            "problems": [labels.detail(problem) for problem in capped_problems(self.problems)],
            "errors_file": {"token": self.errors_file[0], "expires_at": self.errors_file[1]}
            if self.errors_file else None,
        }

    def fail(self, problem: RowProblem) -> None:
        """Count a row as failed because of ``problem``."""
        self.problems.append(problem)
        self.failed += 1


def _json_ready(value: object) -> object:
    if isinstance(value, list):
        return [asdict(item) if is_dataclass(item) and not isinstance(item, type) else item for item in value]
    return value


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
    keeper: UploadKeeper | None = None,
) -> ImportReport:
    """Check a member file and, unless ``dry_run``, import its valid rows in one transaction.

    Args:
        data: the file's bytes (XLSX or CSV/TSV text; see :func:`cardsvc.importing.files.read_member_table`).
        filename: the name the user gave the file; only used to recognise formats. (People name files after a
            member or her ID number: the audit entries identify the file by the SHA-256 of its bytes instead.)
        chapter_code: chapter for rows without a chapter column value (current or former code).
        dry_run: check everything and report what would happen, writing nothing.
        progress: optional callback for a progress bar.
        today: the date against which birth and join dates are checked (default: today in Vietnam).
        keeper: where to keep the upload for a few minutes when the report has problems, so that the file can be
            downloaded with an error column (:func:`download_errors_file`).

    Returns:
        The :class:`ImportReport`, with its conflicts and probable duplicates.

    Raises:
        PermissionDenied: the actor may only read.
        NotFound: ``chapter_code`` is unknown or outside the actor's scope.
        ValidationFailed: the file cannot be read at all (empty, damaged, unsupported format, too large).
    """
    actor.require_write()
    day = today or vietnam_today()
    default_chapter = find_by_code(session, actor, chapter_code).chapter if chapter_code else None
    table = _read_table(data, filename)
    total = len(table.rows)
    report = ImportReport(dry_run=dry_run, format=table.format, encoding=table.encoding, rows_total=total,
                          ignored_columns=list(table.ignored_columns), table=table)
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
    planned = _match_existing(session, actor, planned, report, default_chapter)
    creates = _creatable([p for p in planned if p.existing is None], report)
    report.created = len(creates)
    names: dict[str, tuple[str, str]] = {}
    duplicates = _probable_duplicates(session, creates, names)
    changed_by_chapter = _apply_updates(cipher, [p for p in planned if p.existing is not None],
                                        frozenset(table.columns), report)
    if dry_run:
        # The updates above were only applied to loaded objects so that they could be counted; nothing was
        # flushed, and the rollback discards them.
        session.rollback()
        _report_duplicates(session, report, duplicates, created=False)
    else:
        created_by_chapter = _insert_new(session, cipher, creates, names, officer_id=actor.id, today=day,
                                         total=total, progress=progress)
        _report_duplicates(session, report, duplicates, created=True)
        _audit(session, actor, hashlib.sha256(data).hexdigest(), report, default_chapter,
               {"member.import_create": created_by_chapter, "member.import_update": changed_by_chapter})
        session.commit()
    if progress:
        progress(total, total)
    report.problems.sort(key=lambda p: p.row)
    if keeper is not None and report.problems:
        report.errors_file = keeper.keep(KeptUpload(data=data, filename=filename, chapter_code=chapter_code,
                                                    officer_id=actor.id))
    return report


@dataclass(frozen=True)
class ErrorsDownload:
    """A member file given back with its errors: the bytes, their media type and a file name."""

    content: bytes
    media_type: str
    filename: str

    @property
    def headers(self) -> dict[str, str]:
        """An attachment under the file's name (ASCII fallback plus RFC 6266 UTF-8 name), never cached."""
        fallback = "".join(char if char.isascii() and (char.isalnum() or char in "-_.") else "_"
                           for char in fold(self.filename))
        return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(self.filename)}",
                "Cache-Control": "no-store"}


def download_errors_file(
    session: Session,
    actor: Actor,
    cipher: PiiCipher,
    keeper: UploadKeeper,
    token: str,
    *,
    fmt: ErrorsFormat,
    lang: str,
    today: date | None = None,
) -> ErrorsDownload:
    """The upload kept under ``token``, checked again (a dry run) and given back with an error column.

    Raises:
        NotFound: the token is unknown, expired or another officer's.
    """
    kept = keeper.fetch(token, actor.id)
    report = import_members(session, actor, cipher, data=kept.data, filename=kept.filename,
                            chapter_code=kept.chapter_code, dry_run=True, today=today)
    return ErrorsDownload(content=report_errors_file(report, fmt=fmt, lang=lang), media_type=MEDIA_TYPES[fmt],
                          filename=errors_file_name(kept.filename, fmt))


def report_errors_file(report: ImportReport, *, fmt: ErrorsFormat, lang: str) -> bytes:
    """The file of ``report`` with the messages of its problems in an added column (XLSX or CSV)."""
    return errors_file(report.table, report.problems, report.labels, fmt=fmt, lang=lang)


def _creatable(new: list[_Planned], report: ImportReport) -> list[_Planned]:
    """The rows that may register new members; a row without ID number (keyed by member number) cannot."""
    creatable: list[_Planned] = []
    for plan in new:
        if plan.row.updates_only:
            report.fail(_problem(
                plan.row.row, "member_number", "unknown_member_number",
                "No registered member in your scope has this member number; to register a new member, give her "
                "ID number, date of birth and gender.",
                "Không có hội viên nào trong phạm vi quản lý có mã hội viên này; muốn thêm hội viên mới, hãy ghi "
                "số CCCD, ngày sinh và giới tính.",
            ))
        else:
            creatable.append(plan)
    return creatable


def _read_table(data: bytes, filename: str) -> RawTable:
    try:
        return read_member_table(data, filename)
    except InputError as exc:
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


def _match_existing(session: Session, actor: Actor, planned: list[_Planned], report: ImportReport,
                    import_chapter: Chapter | None) -> list[_Planned]:
    """Find members already registered (by either ID number or the member number), in chunks.

    Returns the rows that may be written, each with the member it updates (or None for a new member); the
    others are reported as failed. A member number of a record merged into another member's finds that member. A
    member that the row would move from outside the subtree of the import's chapter (the file's chapter, or the
    row's own when the file has none) is a conflict: the row is not applied, so an import never moves a member in
    from elsewhere.
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
    _follow_merges(session, by_number)
    kept: list[_Planned] = []
    # Rows of the file that already claimed a registered member, by member id.
    claimed: dict[int, int] = {}
    for plan in planned:
        number = plan.row.row
        found = [(column, member) for column, member in (
            ("id_number", by_id.get(plan.id_index or "")), ("old_id_number", by_old.get(plan.old_index or "")),
            ("member_number", by_number.get(plan.row.member_number or "")),
        ) if member is not None]
        if len({member.id for _, member in found}) > 1:
            report.fail(_problem(
                number, "", "ambiguous_match",
                "The ID number and the member number belong to two different registered members.",
                "Số định danh và mã hội viên thuộc về hai hội viên khác nhau đã đăng ký.",
            ))
            continue
        if not found:
            kept.append(plan)
            continue
        column, existing = found[0]
        if not actor.sees(existing.chapter.path):
            # Nothing about her: the importing officer may not know who she is or where.
            report.fail(_problem(
                number, column, "member_outside_scope",
                "This person is already registered in a chapter outside your scope (same ID number or member "
                "number); the row was not applied. An officer responsible for both chapters must decide: "
                "transfer her, or correct the list.",
                "Người này đã là hội viên ở chi hội ngoài phạm vi của bạn (trùng số giấy tờ hoặc mã hội viên); "
                "dòng này không được áp dụng. Cán bộ quản lý cả hai chi hội cần quyết định: chuyển sinh hoạt, "
                "hoặc sửa danh sách.",
            ))
            report.conflicts.append(ImportConflict(number, "member_outside_scope", None))
            continue
        if existing.chapter_id != plan.chapter.id \
                and not existing.chapter.path.startswith((import_chapter or plan.chapter).path):
            brief = MemberBrief.of(existing)
            report.fail(_problem(
                number, column, "member_in_other_chapter",
                f"Already registered in another chapter: {brief.full_name}, member number {brief.member_number}, "
                f"{brief.chapter_name} ({brief.chapter_code}). The row was not applied: an import does not move a "
                "member in from outside the chapter it is for. An officer responsible for both chapters must "
                "decide: transfer her, or correct the list.",
                f"Đã là hội viên ở chi hội khác: {brief.full_name}, mã hội viên {brief.member_number}, "
                f"{brief.chapter_name} ({brief.chapter_code}). Dòng này không được áp dụng: nhập danh sách không "
                "chuyển hội viên từ nơi khác về. Cán bộ quản lý cả hai chi hội cần quyết định: chuyển sinh hoạt, "
                "hoặc sửa danh sách.",
            ))
            report.conflicts.append(ImportConflict(number, "member_in_other_chapter", brief))
            continue
        if plan.row.member_number and by_number.get(plan.row.member_number) is not existing:
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


def _follow_merges(session: Session, by_number: dict[str, Member]) -> None:
    """Replace records merged into another member's (found by their member number) with that member."""
    into = sorted({m.merged_into_id for m in by_number.values() if m.merged_into_id is not None})
    if not into:
        return
    survivors = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(into)))}
    for number, member in by_number.items():
        if member.merged_into_id is not None:
            by_number[number] = survivors[member.merged_into_id]


def _probable_duplicates(session: Session, creates: list[_Planned], names: dict[str, tuple[str, str]]
                         ) -> list[tuple[_Planned, MemberBrief]]:
    """Registered members that new rows probably duplicate (same chapter, name sort key and birth date, no ID
    number that contradicts: see :mod:`cardsvc.services.merges`); one query on ``(chapter_id, sort_key)`` per
    chunk. The briefs are made at once, before a dry run's rollback expires the members."""
    by_key: dict[tuple[int, str, date], list[_Planned]] = defaultdict(list)
    for plan in creates:
        if plan.row.birth_date is not None:
            by_key[(plan.chapter.id, _name_keys(plan.row.full_name, names)[1], plan.row.birth_date)].append(plan)
    found: list[tuple[_Planned, MemberBrief]] = []
    for chunk in _chunks(list(by_key)):
        stmt = select(Member).where(
            Member.chapter_id.in_(sorted({chapter_id for chapter_id, _, _ in chunk})),
            _one_of(session, Member.sort_key, sorted({sort_key for _, sort_key, _ in chunk})),
            Member.merged_into_id.is_(None),
        )
        for member in session.scalars(stmt):
            for plan in by_key.get((member.chapter_id, member.sort_key, member.birth_date), []):
                if numbers_compatible((plan.id_index, plan.old_index),
                                      (member.id_number_index, member.old_id_number_index)):
                    found.append((plan, MemberBrief.of(member)))
    return sorted(found, key=lambda pair: (pair[0].row.row, pair[1].member_id))


def _report_duplicates(session: Session, report: ImportReport, pairs: list[tuple[_Planned, MemberBrief]], *,
                       created: bool) -> None:
    """List the probable duplicates, with the members the rows created (``created``), and warn on each row."""
    for plan, registered in pairs:
        new_member_id = None
        if created:
            column, index = ((Member.id_number_index, plan.id_index) if plan.id_index
                             else (Member.old_id_number_index, plan.old_index))
            new_member_id = session.scalar(select(Member.id).where(column == index))
        report.duplicates.append(ProbableDuplicate(plan.row.row, registered, new_member_id))
        report.problems.append(RowProblem(
            row=plan.row.row, column="", code="probable_duplicate", severity="warning",
            message_en=f"Probably the same person as member {registered.member_number} of this chapter (same name "
                       "and date of birth, no ID number that differs): the row makes a new member. Check both "
                       "records and merge them if they are one person.",
            message_vi=f"Có thể là cùng một người với hội viên {registered.member_number} của chi hội này (cùng họ "
                       "tên và ngày sinh, không có số giấy tờ nào khác nhau): dòng này tạo hội viên mới. Hãy kiểm "
                       "tra hai hồ sơ và gộp lại nếu là một người.",
        ))


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
    if row.gender is None:
        keep["gender"] = member.gender
    if row.birth_date is None:
        keep["birth_date"] = member.birth_date
        keep["birth_date_precision"] = member.birth_date_precision
    if "honorary" not in columns:
        keep["honorary"] = member.honorary
    # A list that only knows the birth year must not lose the full birth date recorded for the same year.
    if (row.birth_date is not None and row.birth_date_precision == "year" and member.birth_date_precision == "day"
            and member.birth_date.year == row.birth_date.year):
        keep["birth_date"] = member.birth_date
        keep["birth_date_precision"] = "day"
    return dataclasses.replace(row, **keep) if keep else row


def _letters(name: str) -> list[tuple[str, frozenset[str]]]:
    """A name as (base letter, diacritics) pairs, case-folded; đ is d with a stroke (it does not decompose)."""
    letters: list[tuple[str, set[str]]] = []
    for char in unicodedata.normalize("NFD", name.casefold()):
        if unicodedata.combining(char) and letters:
            letters[-1][1].add(char)
        elif char == "đ":
            letters.append(("d", {"stroke"}))
        else:
            letters.append((char, set()))
    return [(base, frozenset(marks)) for base, marks in letters]


def _lost_diacritics_only(given: str, stored: str) -> bool:
    """Whether ``given`` is ``stored`` with diacritics lost and nothing else changed ("Duong Thi Anh" for "Dương
    Thị Ánh"; letter case aside). A diacritic that ``stored`` lacks makes it a correction, not a loss."""
    given_letters, stored_letters = _letters(given), _letters(stored)
    return (given_letters != stored_letters and len(given_letters) == len(stored_letters)
            and all(g_base == s_base and g_marks <= s_marks
                    for (g_base, g_marks), (s_base, s_marks) in zip(given_letters, stored_letters, strict=True)))


def _apply_updates(cipher: PiiCipher, updates: list[_Planned], columns: frozenset[str], report: ImportReport
                   ) -> dict[str, list[int]]:
    """Apply matched rows to their members (moving them to the row's chapter); return changed ids by path.

    A name that differs from the stored one only by lost diacritics (an accent-less list) keeps the stored name,
    with a warning.
    """
    changed_by_chapter: dict[str, list[int]] = defaultdict(list)
    for plan in updates:
        member = plan.existing
        assert member is not None
        row = _with_stored_values(plan.row, member, columns, cipher)
        if _lost_diacritics_only(row.full_name, member.full_name):
            row = dataclasses.replace(row, full_name=member.full_name)
            report.problems.append(RowProblem(
                row=row.row, column="full_name", code="name_diacritics_kept", severity="warning",
                message_en="The name in the file differs from the registered name only by missing diacritics "
                           "(accents); the registered name was kept.",
                message_vi="Họ tên trong tệp chỉ khác họ tên đã lưu ở chỗ thiếu dấu; hệ thống giữ nguyên họ tên "
                           "đã lưu.",
            ))
        changed = apply_member_row(member, row, cipher)
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
    names: dict[str, tuple[str, str]],
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
    (``tests/server/importing/test_imports.py`` checks that both give the same row)."""
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
                          "updated": report.updated, "unchanged": report.unchanged, "failed": report.failed,
                          "conflicts": len(report.conflicts), "probable_duplicates": len(report.duplicates)})

