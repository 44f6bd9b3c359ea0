"""Import of member lists (CSV/XLSX): a dry-run report, or one transaction that imports every valid row.

Re-importing the same file updates members (matched on the ID-number blind index, the old ID number's index
or the member number) and never duplicates them. Rows with errors are reported and skipped; nothing else of the
file is lost or half-written, because all writes happen in one transaction after every row has been checked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from cardsvc.db.models import Chapter, Member, MemberStatusChange
from cardsvc.errors import NotFound, ValidationFailed
from cardsvc.importing.files import ImportFileError, read_member_table
from cardsvc.importing.rows import MemberRow, RowProblem, validate_rows
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.chapters import find_by_code
from cardsvc.services.context import Actor
from cardsvc.services.members import allocate_member_numbers, apply_member_row

CHUNK = 1000
AUDIT_IDS_PER_ENTRY = 5000
ProgressCallback = Callable[[int, int], None]


@dataclass
class ImportReport:
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
        data = asdict(self)
        data["problems"] = [
            {"row": p.row, "field": p.column or None, "code": p.code, "severity": p.severity,
             "message": p.message_en, "message_vi": p.message_vi}
            for p in self.problems
        ]
        return data


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
    """Check a member file and, unless ``dry_run``, import its valid rows in one transaction."""
    actor.require_write()
    default_chapter = _resolve_chapter(session, actor, chapter_code) if chapter_code else None
    try:
        table = read_member_table(data, filename)
    except ImportFileError as exc:
        raise ValidationFailed(exc.message_en, code=exc.code,
                               details=[{"code": exc.code, "message": exc.message_en,
                                         "message_vi": exc.message_vi}]) from exc
    report = ImportReport(dry_run=dry_run, format=table.format, encoding=table.encoding,
                          rows_total=len(table.rows), ignored_columns=list(table.ignored_columns))
    planned: list[_Planned] = []
    chapters: dict[str, Chapter | RowProblem] = {}
    for done, (raw, (row, problems)) in enumerate(zip(table.rows, validate_rows(table.rows, today=today),
                                                      strict=True), start=1):
        report.problems.extend(problems)
        if progress and done % CHUNK == 0:
            progress(done // 2, len(table.rows))
        if row is None:
            report.failed += 1
            continue
        chapter = _row_chapter(session, actor, row, raw.number, default_chapter, chapters)
        if isinstance(chapter, RowProblem):
            report.problems.append(chapter)
            report.failed += 1
            continue
        if row.gender == "male" and not row.honorary:
            report.problems.append(_problem(
                raw.number, "gender", "male_not_honorary",
                "Members are women; a man can only be an honorary member.",
                "Hội viên là phụ nữ; nam giới chỉ có thể là hội viên danh dự.",
            ))
            report.failed += 1
            continue
        planned.append(_Planned(
            row=row, chapter=chapter,
            id_index=cipher.blind_index("id_number", row.id_number) if row.id_number else None,
            old_index=cipher.blind_index("old_id_number", row.old_id_number) if row.old_id_number else None,
        ))
    planned = _match_existing(session, actor, planned, report)
    creates = [p for p in planned if p.existing is None]
    updates = [p for p in planned if p.existing is not None]
    report.created = len(creates)
    changed_by_chapter: dict[str, list[int]] = defaultdict(list)
    for plan in updates:
        assert plan.existing is not None
        # apply_member_row only marks changes; in a dry run the session is rolled back below.
        changed = apply_member_row(plan.existing, plan.row, cipher)
        if plan.existing.chapter_id != plan.chapter.id:
            plan.existing.chapter_id = plan.chapter.id
            changed.append("chapter_id")
        if changed:
            report.updated += 1
            changed_by_chapter[plan.chapter.path].append(plan.existing.id)
        else:
            report.unchanged += 1
    if dry_run:
        session.rollback()
        if progress:
            progress(len(table.rows), len(table.rows))
        report.problems.sort(key=lambda p: p.row)
        return report
    created_by_chapter = _insert_new(session, cipher, creates, officer_id=actor.id, table_rows=len(table.rows),
                                     progress=progress)
    groups_by_action = {"member.import_create": created_by_chapter, "member.import_update": changed_by_chapter}
    for action, groups in groups_by_action.items():
        for path, member_ids in groups.items():
            for ids in _chunks(member_ids, AUDIT_IDS_PER_ENTRY):
                audit.record(session, actor, action, target_type="member", target_id=None, chapter_path=path,
                             details={"member_ids": list(ids), "file": filename[:100]})
    audit.record(session, actor, "member.import", target_type="import", target_id=None,
                 chapter_path=default_chapter.path if default_chapter else actor.scope_path,
                 details={"file": filename[:100], "rows": report.rows_total, "created": report.created,
                          "updated": report.updated, "failed": report.failed})
    session.commit()
    if progress:
        progress(len(table.rows), len(table.rows))
    report.problems.sort(key=lambda p: p.row)
    return report


def _resolve_chapter(session: Session, actor: Actor, code: str) -> Chapter:
    chapter = find_by_code(session, actor, code).chapter
    return chapter


def _row_chapter(
    session: Session,
    actor: Actor,
    row: MemberRow,
    row_number: int,
    default: Chapter | None,
    cache: dict[str, Chapter | RowProblem],
) -> Chapter | RowProblem:
    if not row.chapter_code:
        if default is None:
            return _problem(row_number, "chapter_code", "missing_chapter",
                            "No chapter: fill the chapter column or choose a chapter for the whole file.",
                            "Thiếu chi hội: điền cột mã chi hội hoặc chọn chi hội cho cả tệp.")
        return default
    code = row.chapter_code.strip().upper()
    if code not in cache:
        try:
            cache[code] = _resolve_chapter(session, actor, code)
        except NotFound:
            cache[code] = _problem(row_number, "chapter_code", "unknown_chapter",
                                   "Unknown chapter code, or a chapter outside your scope.",
                                   "Mã chi hội không tồn tại hoặc ngoài phạm vi quản lý của bạn.")
    found = cache[code]
    if isinstance(found, RowProblem):
        return RowProblem(row=row_number, column=found.column, code=found.code, message_en=found.message_en,
                          message_vi=found.message_vi, severity="error")
    return found


def _match_existing(session: Session, actor: Actor, planned: list[_Planned], report: ImportReport
                    ) -> list[_Planned]:
    """Find members already registered (by either ID number or the member number), in chunks."""
    by_id: dict[str, Member] = {}
    by_old: dict[str, Member] = {}
    by_number: dict[str, Member] = {}
    for chunk in _chunks(planned):
        id_keys = [p.id_index for p in chunk if p.id_index]
        old_keys = [p.old_index for p in chunk if p.old_index]
        numbers = [p.row.member_number for p in chunk if p.row.member_number]
        conditions = []
        if id_keys:
            conditions.append(Member.id_number_index.in_(id_keys))
        if old_keys:
            conditions.append(Member.old_id_number_index.in_(old_keys))
        if numbers:
            conditions.append(Member.member_number.in_(numbers))
        if not conditions:
            continue
        for member in session.scalars(select(Member).where(or_(*conditions))).unique():
            if member.id_number_index:
                by_id[member.id_number_index] = member
            if member.old_id_number_index:
                by_old[member.old_id_number_index] = member
            by_number[member.member_number] = member
    kept: list[_Planned] = []
    for plan in planned:
        candidates = {
            m.id for m in (
                by_id.get(plan.id_index or ""), by_old.get(plan.old_index or ""),
                by_number.get(plan.row.member_number or ""),
            ) if m is not None
        }
        number = plan.row.row
        if len(candidates) > 1:
            report.problems.append(_problem(
                number, "", "ambiguous_match",
                "The ID number and the member number belong to two different registered members.",
                "Số định danh và mã hội viên thuộc về hai hội viên khác nhau đã đăng ký.",
            ))
            report.failed += 1
            continue
        existing = next(
            (m for m in (by_id.get(plan.id_index or ""), by_old.get(plan.old_index or ""),
                         by_number.get(plan.row.member_number or "")) if m is not None),
            None,
        )
        if existing is not None and not actor.sees(existing.chapter.path):
            report.problems.append(_problem(
                number, "id_number", "member_outside_scope",
                "This person is already registered in a chapter outside your scope; ask that chapter to "
                "transfer her.",
                "Người này đã là hội viên ở chi hội ngoài phạm vi của bạn; "
                "hãy đề nghị chi hội đó chuyển sinh hoạt.",
            ))
            report.failed += 1
            continue
        if existing is not None and plan.row.member_number and existing.member_number != plan.row.member_number:
            report.problems.append(_problem(
                number, "member_number", "member_number_mismatch",
                "The member number differs from the one registered for this ID number.",
                "Mã hội viên khác với mã đã đăng ký cho số định danh này.",
            ))
            report.failed += 1
            continue
        plan.existing = existing
        kept.append(plan)
    return kept


def _insert_new(
    session: Session,
    cipher: PiiCipher,
    creates: list[_Planned],
    *,
    officer_id: int | None,
    table_rows: int,
    progress: ProgressCallback | None,
) -> dict[str, list[int]]:
    """Insert new members set-wise (one multi-row INSERT … RETURNING per chunk) with their first status row."""
    created_by_chapter: dict[str, list[int]] = defaultdict(list)
    numbers = iter(allocate_member_numbers(session, sum(1 for p in creates if not p.row.member_number)))
    today = date.today()
    for done, chunk in enumerate(_chunks(creates), start=1):
        values = []
        for plan in chunk:
            member = Member(chapter_id=plan.chapter.id, status="active", honorary=False,
                            member_number=plan.row.member_number or next(numbers))
            apply_member_row(member, plan.row, cipher)
            member.status_changed_on = plan.row.join_date or today
            values.append({column: getattr(member, column) for column in _INSERT_COLUMNS})
        inserted = session.execute(
            insert(Member).returning(Member.id, sort_by_parameter_order=True), values
        ).all()
        history = []
        for (member_id,), plan, row in zip(inserted, chunk, values, strict=True):
            created_by_chapter[plan.chapter.path].append(member_id)
            history.append({"member_id": member_id, "from_status": None, "to_status": "active",
                            "effective_on": row["status_changed_on"], "officer_id": officer_id})
        session.execute(insert(MemberStatusChange), history)
        if progress:
            progress(min(table_rows, table_rows // 2 + done * CHUNK // 2), table_rows)
    return created_by_chapter


_INSERT_COLUMNS = (
    "member_number", "full_name", "name_search", "sort_key", "birth_date", "birth_date_precision", "gender",
    "id_number_ciphertext", "id_number_index", "id_number_masked", "old_id_number_ciphertext",
    "old_id_number_index", "old_id_number_masked", "phone", "chapter_id", "join_date", "status",
    "status_changed_on", "honorary",
)
