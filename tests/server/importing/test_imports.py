"""Member-list imports through the real API (``POST /v1/members/import``) and the ``cardsvc import`` command."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.cli import main
from cardsvc.days import vietnam_today
from cardsvc.db.models import AuditEntry, Counter, Member, MemberStatusChange
from cardsvc.db.session import make_engine
from cardsvc.importing.rows import format_member_number
from cardsvc.security import PiiCipher
from cardsvc.services import chapters
from cardsvc.services.context import system_actor
from cardsvc.services.kept_uploads import KeptUpload, UploadKeeper
from cardsvc.services.pii import stored_value
from tests.conftest import NAME_TOO_LONG_FOR_CARD, TEST_SECRET, Tree, login, make_member
from tests.server.importing.builders import (
    HEADER_EN,
    HEADER_VI,
    Person,
    citizen_id,
    csv_bytes,
    people,
    rewrite_xlsx_part,
    table,
    xlsx_bytes,
)

BRANCH_A = "T-HNI-BD-01"
BRANCH_B = "T-HCM-SG-01"


def upload(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    *,
    filename: str = "danh-sach.csv",
    chapter_code: str | None = BRANCH_A,
    dry_run: bool = False,
) -> Any:
    form = {"dry_run": "true" if dry_run else "false"}
    if chapter_code is not None:
        form["chapter_code"] = chapter_code
    return client.post("/v1/members/import", headers=headers, files={"file": (filename, data)}, data=form)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def member_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Member)) or 0


def audit_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditEntry)) or 0


def by_id_number(db: Session, cipher: PiiCipher, id_number: str) -> Member:
    db.expire_all()
    member = db.scalar(select(Member).where(Member.id_number_index == cipher.blind_index("id_number", id_number)))
    assert member is not None
    return member


def by_old_id_number(db: Session, cipher: PiiCipher, old_id_number: str) -> Member:
    db.expire_all()
    member = db.scalar(select(Member).where(
        Member.old_id_number_index == cipher.blind_index("old_id_number", old_id_number)))
    assert member is not None
    return member


def errors_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in report["problems"] if p["severity"] == "error"]


@pytest.fixture
def officer_a(client: TestClient, tree: Tree) -> dict[str, str]:
    return login(client, "t.officer.a")


# ---------------------------------------------------------------------------------------------------------
# Formats, encodings, headers, dates


@pytest.mark.parametrize(
    ("encoding", "delimiter", "reported"),
    [
        ("utf-8", ",", "utf-8"),
        ("utf-8-sig", ",", "utf-8-sig"),
        ("utf-8", ";", "utf-8"),
        ("utf-16", "\t", "utf-16-le"),
        ("cp1258", ",", "cp1258"),
    ],
)
def test_csv_encodings_import_names_intact(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str],
    encoding: str, delimiter: str, reported: str,
) -> None:
    persons = people(3)
    data = csv_bytes(table(persons), encoding=encoding, delimiter=delimiter)
    report = ok(upload(client, officer_a, data))
    assert (report["format"], report["encoding"]) == ("csv", reported)
    assert (report["created"], report["failed"], report["rows_total"]) == (3, 0, 3)
    for person in persons:
        member = by_id_number(db, cipher, person.id_number)
        assert member.full_name == person.full_name  # NFC, even from Windows-1258's combining tones
        assert member.birth_date == person.birth
        assert member.chapter.code == BRANCH_A


def test_xlsx_with_english_headers_serial_dates_and_numeric_cells(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    person = people(1)[0]
    birth_serial = (person.birth - date(1899, 12, 30)).days  # Excel's day 0
    rows = [list(HEADER_EN), [person.full_name, birth_serial, "female", person.id_number, int(person.phone), ""]]
    report = ok(upload(client, officer_a, xlsx_bytes(rows), filename="list.xlsx"))
    assert (report["format"], report["created"], report["failed"]) == ("xlsx", 1, 0)
    member = by_id_number(db, cipher, person.id_number)
    assert member.birth_date == person.birth
    assert stored_value(member, "phone", cipher) == "+84" + person.phone[1:]


def test_csv_excel_serial_date_text_and_year_only(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    first, second = people(2)
    rows = table([first, second])
    rows[1][1] = str((first.birth - date(1899, 12, 30)).days)
    rows[2][1] = str(second.birth.year)
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["failed"]) == (2, 0)
    assert by_id_number(db, cipher, first.id_number).birth_date == first.birth
    stored = by_id_number(db, cipher, second.id_number)
    assert (stored.birth_date, stored.birth_date_precision) == (date(second.birth.year, 1, 1), "year")


@pytest.mark.parametrize("kind", ["xlsx_number", "csv_text"])
def test_id_number_that_lost_its_leading_zero_is_repaired_with_a_warning(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str], kind: str
) -> None:
    person = people(1, province="079")[0]
    assert person.id_number.startswith("0")
    if kind == "xlsx_number":
        rows: list[list[Any]] = [list(HEADER_VI), [*person.cells()[:3], int(person.id_number), person.phone, ""]]
        data, filename = xlsx_bytes(rows), "list.xlsx"
    else:
        text_rows = table([person])
        text_rows[1][3] = person.id_number[1:]
        data, filename = csv_bytes(text_rows), "list.csv"
    report = ok(upload(client, officer_a, data, filename=filename))
    assert report["created"] == 1
    assert [(p["row"], p["field"], p["code"], p["severity"]) for p in report["problems"]] == [
        (2, "id_number", "leading_zero_restored", "warning")
    ]
    assert by_id_number(db, cipher, person.id_number).id_number_masked == person.id_number[:3] + "*******" + \
        person.id_number[-2:]


def test_hanoi_id_numbers_that_lost_both_zeros_are_repaired_with_a_warning_per_row(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    persons = people(2, province="001")
    rows: list[list[Any]] = [list(HEADER_VI)]
    rows += [[*person.cells()[:3], int(person.id_number), person.phone, ""] for person in persons]
    assert all(len(str(row[3])) == 10 for row in rows[1:])
    report = ok(upload(client, officer_a, xlsx_bytes(rows), filename="ba-dinh.xlsx"))
    assert (report["created"], report["failed"]) == (2, 0)
    assert [(p["row"], p["field"], p["code"], p["severity"]) for p in report["problems"]] == [
        (2, "id_number", "leading_zeros_restored", "warning"), (3, "id_number", "leading_zeros_restored", "warning")
    ]
    assert all("Excel" in p["message"] and "Excel" in p["message_vi"] for p in report["problems"])
    for person in persons:
        assert by_id_number(db, cipher, person.id_number).birth_date == person.birth


def test_scientific_notation_id_number_is_refused(
    client: TestClient, db: Session, officer_a: dict[str, str]
) -> None:
    rows = table(people(1, province="079"))
    rows[1][3] = "7.91235E+10"
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["failed"]) == (0, 1)
    assert [(p["field"], p["code"]) for p in errors_of(report)] == [("id_number", "precision_lost")]


# ---------------------------------------------------------------------------------------------------------
# Dry run and commit


def _file_with_problems() -> tuple[bytes, list[Person]]:
    good = people(2)
    bad = people(2)
    rows = table([*good, *bad])
    rows[3][1] = "31/02/1980"  # no such day
    rows[4][3] = "12345"  # too short for a citizen ID number
    return csv_bytes(rows), good


def test_dry_run_reports_every_problem_and_writes_nothing(
    client: TestClient, db: Session, officer_a: dict[str, str]
) -> None:
    data, _ = _file_with_problems()
    members_before, audit_before = member_count(db), audit_count(db)
    report = ok(upload(client, officer_a, data, dry_run=True))
    assert report["dry_run"] is True
    assert (report["rows_total"], report["created"], report["failed"]) == (4, 2, 2)
    problems = errors_of(report)
    assert [(p["row"], p["field"]) for p in problems] == [(4, "birth_date"), (5, "id_number")]
    for problem in problems:
        assert problem["message"] and problem["message_vi"] and problem["message"] != problem["message_vi"]
    assert (member_count(db), audit_count(db)) == (members_before, audit_before)


def test_dry_run_of_an_update_changes_nothing(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    existing = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Lan")
    rows = [list(HEADER_VI), ["Trần Thị Lành", existing.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", existing.id_number_ciphertext or b""), "", ""]]
    audit_before = audit_count(db)
    report = ok(upload(client, officer_a, csv_bytes(rows), dry_run=True))
    assert (report["updated"], report["created"]) == (1, 0)
    db.expire_all()
    assert db.get_one(Member, existing.id).full_name == "Trần Thị Lan"
    assert audit_count(db) == audit_before


def test_commit_imports_valid_rows_and_reports_the_rest(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    data, good = _file_with_problems()
    members_before = member_count(db)
    report = ok(upload(client, officer_a, data))
    assert (report["dry_run"], report["created"], report["failed"]) == (False, 2, 2)
    assert member_count(db) == members_before + 2
    for person in good:
        member = by_id_number(db, cipher, person.id_number)
        assert member.status == "active"
        history = db.scalars(select(MemberStatusChange).where(MemberStatusChange.member_id == member.id)).all()
        assert [(h.from_status, h.to_status) for h in history] == [(None, "active")]


def test_reimport_updates_and_never_duplicates(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    persons = people(3)
    data = csv_bytes(table(persons))
    assert ok(upload(client, officer_a, data))["created"] == 3
    count = member_count(db)
    second = ok(upload(client, officer_a, data))
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 3)
    renamed = [dataclasses.replace(persons[0], full_name="Nguyễn Thị Kim Oanh"), *persons[1:]]
    third = ok(upload(client, officer_a, csv_bytes(table(renamed))))
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 2)
    assert member_count(db) == count
    assert by_id_number(db, cipher, persons[0].id_number).full_name == "Nguyễn Thị Kim Oanh"


def test_reimport_matches_on_member_number(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    existing = make_member(db, cipher, tree.branch_a)
    corrected_id = citizen_id(existing.birth_date)
    rows = [["Mã hội viên", *HEADER_VI],
            [existing.member_number, existing.full_name, existing.birth_date.strftime("%d/%m/%Y"), "Nữ",
             corrected_id, "0912345678", ""]]
    count = member_count(db)
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["updated"]) == (0, 1)
    assert member_count(db) == count
    assert by_id_number(db, cipher, corrected_id).id == existing.id


def test_member_number_of_another_person_is_an_ambiguous_match(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    first = make_member(db, cipher, tree.branch_a)
    second = make_member(db, cipher, tree.branch_a)
    rows = [["Mã hội viên", *HEADER_VI],
            [second.member_number, first.full_name, first.birth_date.strftime("%d/%m/%Y"), "Nữ",
             cipher.decrypt("id_number", first.id_number_ciphertext or b""), "", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["failed"], report["updated"], report["unchanged"]) == (1, 0, 0)
    assert [p["code"] for p in errors_of(report)] == ["ambiguous_match"]


@pytest.mark.parametrize("name_in_file", ["Duong Thi Anh", "DUONG THI ANH", "Dương Thi Anh"])
def test_accent_less_list_keeps_the_stored_name_and_says_so(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str], name_in_file: str
) -> None:
    existing = make_member(db, cipher, tree.branch_a, full_name="Dương Thị Ánh", phone="0912345678")
    rows = [list(HEADER_VI), [name_in_file, existing.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", existing.id_number_ciphertext or b""), "0987654321", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["updated"], report["unchanged"], report["failed"]) == (1, 0, 0)  # the phone is new
    assert [(p["row"], p["field"], p["code"], p["severity"]) for p in report["problems"]] == [
        (2, "full_name", "name_diacritics_kept", "warning")
    ]
    db.expire_all()
    stored = db.get_one(Member, existing.id)
    assert (stored.full_name, stored_value(stored, "phone", cipher)) == ("Dương Thị Ánh", "+84987654321")
    again = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (again["updated"], again["unchanged"]) == (0, 1)


@pytest.mark.parametrize(("stored_name", "name_in_file"), [
    ("Dương Thị Anh", "Dương Thị Ánh"),  # diacritics added: a correction
    ("Dương Thị Ánh", "Dương Thị Ảnh"),  # another tone mark
    ("Dương Thị Ánh", "Duong Thi Anh Hong"),  # another name
])
def test_a_name_that_differs_by_more_than_lost_diacritics_is_updated(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str],
    stored_name: str, name_in_file: str
) -> None:
    existing = make_member(db, cipher, tree.branch_a, full_name=stored_name)
    rows = [list(HEADER_VI), [name_in_file, existing.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", existing.id_number_ciphertext or b""), "", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["updated"], report["problems"]) == (1, [])
    db.expire_all()
    assert db.get_one(Member, existing.id).full_name == name_in_file


def test_reimport_without_a_phone_column_keeps_stored_phones(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    persons = people(2)
    ok(upload(client, officer_a, csv_bytes(table(persons))))
    without_phone = [[cell for index, cell in enumerate(row) if index != 4] for row in table(persons)]
    report = ok(upload(client, officer_a, csv_bytes(without_phone)))
    assert (report["updated"], report["unchanged"]) == (0, 2)
    kept = by_id_number(db, cipher, persons[0].id_number)
    assert stored_value(kept, "phone", cipher) == "+84" + persons[0].phone[1:]


def test_two_rows_for_the_same_registered_member_are_refused(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    existing = make_member(db, cipher, tree.branch_a)
    id_number = cipher.decrypt("id_number", existing.id_number_ciphertext or b"")
    birth = existing.birth_date.strftime("%d/%m/%Y")
    rows = [["Mã hội viên", *HEADER_VI],
            ["", existing.full_name, birth, "Nữ", id_number, "", ""],
            [existing.member_number, "Trần Thị Khác", birth, "Nữ", citizen_id(existing.birth_date), "", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["unchanged"], report["updated"], report["failed"]) == (1, 0, 1)
    [problem] = errors_of(report)
    assert (problem["row"], problem["code"]) == (3, "duplicate_in_file")
    assert "row 2" in problem["message"] and "dòng 2" in problem["message_vi"]


def test_member_numbers_from_the_file_are_not_handed_out_again(
    client: TestClient, db: Session, officer_a: dict[str, str]
) -> None:
    # A number carried over from an older system that sits exactly where the counter will allocate next.
    counter = db.scalar(select(Counter.value).where(Counter.name == "member_number")) or 0
    upcoming = format_member_number(counter + 1)
    first, second = people(2)
    rows = [["Mã hội viên", *HEADER_VI], [upcoming, *first.cells()], ["", *second.cells()]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["failed"]) == (2, 0)
    numbers = set(db.scalars(select(Member.member_number)))
    assert upcoming in numbers


@pytest.mark.parametrize("column", ["Số CCCD", "Mã hội viên"])
def test_duplicates_inside_one_file_name_the_earlier_row(
    client: TestClient, db: Session, officer_a: dict[str, str], column: str
) -> None:
    first, second, third = people(3)
    rows = [["Mã hội viên", *HEADER_VI], [format_member_number(900_000_001), *first.cells()],
            ["", *second.cells()], [format_member_number(900_000_001), *third.cells()]]
    if column == "Số CCCD":
        rows[3] = ["", *dataclasses.replace(third, birth=first.birth, id_number=first.id_number).cells()]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["failed"]) == (2, 1)
    [problem] = errors_of(report)
    assert (problem["row"], problem["code"]) == (4, "duplicate_in_file")
    assert "row 2" in problem["message"] and "dòng 2" in problem["message_vi"]


# ---------------------------------------------------------------------------------------------------------
# Scope and roles


def test_officer_cannot_import_into_another_province(
    client: TestClient, db: Session, officer_a: dict[str, str]
) -> None:
    count = member_count(db)
    response = upload(client, officer_a, csv_bytes(table(people(1))), chapter_code=BRANCH_B)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert member_count(db) == count


def test_row_chapter_outside_scope_is_a_row_error(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    inside, outside = people(1, chapter_code=BRANCH_A)[0], people(1, chapter_code=BRANCH_B)[0]
    report = ok(upload(client, officer_a, csv_bytes(table([inside, outside])), chapter_code=None))
    assert (report["created"], report["failed"]) == (1, 1)
    assert [(p["row"], p["field"], p["code"]) for p in errors_of(report)] == [
        (3, "chapter_code", "unknown_chapter")
    ]
    assert by_id_number(db, cipher, inside.id_number).chapter.code == BRANCH_A


def test_person_registered_outside_scope_is_a_row_error_not_an_update(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    elsewhere = make_member(db, cipher, tree.branch_b, full_name="Lý Thị Sen")
    rows = [list(HEADER_VI), ["Lý Thị Sen Đổi Tên", elsewhere.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", elsewhere.id_number_ciphertext or b""), "", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["created"], report["updated"], report["failed"]) == (0, 0, 1)
    assert [p["code"] for p in errors_of(report)] == ["member_outside_scope"]
    # A conflict for an officer with both scopes, saying nothing about who she is or where.
    assert report["conflicts"] == [{"row": 2, "code": "member_outside_scope", "member": None}]
    text = json.dumps(report, ensure_ascii=False)
    for secret in ("Lý Thị Sen", elsewhere.member_number, tree.branch_b.code, "Sài Gòn"):
        assert secret not in text
    db.expire_all()
    stored = db.get_one(Member, elsewhere.id)
    assert (stored.full_name, stored.chapter_id) == ("Lý Thị Sen", tree.branch_b.id)


@pytest.mark.parametrize("importer", ["t.admin", "t.officer.a"])
def test_a_member_outside_the_import_chapter_is_a_conflict_and_is_not_moved(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, importer: str
) -> None:
    # The admin sees TP Hồ Chí Minh too, the province officer sees Hoàn Kiếm: neither may move her by importing a
    # Ba Đình list.
    elsewhere = make_member(db, cipher, tree.branch_b if importer == "t.admin" else tree.commune_a2,
                            full_name="Lý Thị Sen")
    rows = [list(HEADER_VI), ["Lý Thị Sen", elsewhere.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", elsewhere.id_number_ciphertext or b""), "0987654321", ""]]
    report = ok(upload(client, login(client, importer), csv_bytes(rows)))
    assert (report["created"], report["updated"], report["unchanged"], report["failed"]) == (0, 0, 0, 1)
    [problem] = errors_of(report)
    assert (problem["row"], problem["field"], problem["code"]) == (2, "id_number", "member_in_other_chapter")
    assert elsewhere.member_number in problem["message"] and elsewhere.chapter.code in problem["message_vi"]
    assert report["conflicts"] == [{"row": 2, "code": "member_in_other_chapter", "member": {
        "member_id": elsewhere.id, "member_number": elsewhere.member_number, "full_name": "Lý Thị Sen",
        "chapter_code": elsewhere.chapter.code, "chapter_name": elsewhere.chapter.name}}]
    db.expire_all()
    stored = db.get_one(Member, elsewhere.id)
    assert (stored.chapter_id, stored_value(stored, "phone", cipher)) == (elsewhere.chapter_id, "+84912345678")


def test_an_import_may_still_move_a_member_inside_its_own_chapter(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    member = make_member(db, cipher, tree.branch_a)
    rows = [list(HEADER_VI), [member.full_name, member.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", member.id_number_ciphertext or b""), "", ""]]
    report = ok(upload(client, officer_a, csv_bytes(rows), chapter_code=tree.commune_a.code))
    assert (report["updated"], report["failed"], report["conflicts"]) == (1, 0, [])
    db.expire_all()
    assert db.get_one(Member, member.id).chapter_id == tree.commune_a.id


def test_a_row_that_keeps_a_member_in_her_own_chapter_is_no_conflict(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree
) -> None:
    elsewhere = make_member(db, cipher, tree.branch_b, phone="0912345678")
    rows = [list(HEADER_VI), [elsewhere.full_name, elsewhere.birth_date.strftime("%d/%m/%Y"), "Nữ",
                              cipher.decrypt("id_number", elsewhere.id_number_ciphertext or b""), "0987654321",
                              tree.branch_b.code]]
    report = ok(upload(client, login(client, "t.admin"), csv_bytes(rows)))
    assert (report["updated"], report["failed"], report["conflicts"]) == (1, 0, [])
    db.expire_all()
    stored = db.get_one(Member, elsewhere.id)
    assert (stored.chapter_id, stored_value(stored, "phone", cipher)) == (tree.branch_b.id, "+84987654321")


def _cmnd_list(persons: list[Person], old_numbers: list[str]) -> list[list[str]]:
    rows = [["Họ và tên", "Ngày sinh", "Giới tính", "Số CMND", "Mã chi hội"]]
    rows += [[p.full_name, p.birth.strftime("%d/%m/%Y"), "Nữ", number, ""]
             for p, number in zip(persons, old_numbers, strict=True)]
    return rows


@pytest.mark.parametrize("dry_run", [False, True])
def test_cccd_list_after_a_cmnd_list_reports_probable_duplicates(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str], dry_run: bool
) -> None:
    persons = people(3)
    old_numbers = ["123456781", "123456782", "123456783"]
    first = ok(upload(client, officer_a, csv_bytes(_cmnd_list(persons, old_numbers))))
    assert first["created"] == 3
    registered = {p.full_name: by_old_id_number(db, cipher, n) for p, n in zip(persons, old_numbers, strict=True)}
    # The later list has two of the three women, one of them written without diacritics.
    later = [dataclasses.replace(persons[0], full_name="Nguyen Thi Phuong Thao"), persons[1]]
    report = ok(upload(client, officer_a, csv_bytes(table(later)), dry_run=dry_run))
    assert (report["created"], report["updated"], report["failed"]) == (2, 0, 0)
    pairs = [(d["row"], d["registered"]["member_id"], d["registered"]["member_number"]) for d in report["duplicates"]]
    assert pairs == [(2, registered[persons[0].full_name].id, registered[persons[0].full_name].member_number),
                     (3, registered[persons[1].full_name].id, registered[persons[1].full_name].member_number)]
    assert [(p["row"], p["code"], p["severity"]) for p in report["problems"]] == [
        (2, "probable_duplicate", "warning"), (3, "probable_duplicate", "warning")]
    assert registered[persons[1].full_name].member_number in report["problems"][1]["message_vi"]
    if dry_run:
        assert [d["new_member_id"] for d in report["duplicates"]] == [None, None]
    else:
        assert [d["new_member_id"] for d in report["duplicates"]] == [
            by_id_number(db, cipher, p.id_number).id for p in later]


def test_records_with_different_numbers_of_the_same_kind_are_no_probable_duplicates(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    registered = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Lan")
    namesake = dataclasses.replace(people(1)[0], full_name="Trần Thị Lan", birth=registered.birth_date,
                                   id_number=citizen_id(registered.birth_date))
    report = ok(upload(client, officer_a, csv_bytes(table([namesake])), dry_run=True))
    assert (report["created"], report["duplicates"], report["problems"]) == (1, [], [])




def test_viewer_gets_403(client: TestClient, db: Session, tree: Tree) -> None:
    response = upload(client, login(client, "t.viewer.a"), csv_bytes(table(people(1))), dry_run=True)
    assert response.status_code == 403
    assert set(response.json()) == {"code", "message", "details"}


def test_anonymous_gets_401(client: TestClient, tree: Tree) -> None:
    assert upload(client, {}, csv_bytes(table(people(1)))).status_code == 401


# ---------------------------------------------------------------------------------------------------------
# Bad files and hostile content


def _broken_xlsx() -> bytes:
    good = xlsx_bytes(table(people(1)))
    return good[: len(good) // 2]


def _xlsx_without_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return buffer.getvalue()


def _xlsx_with_sheet(change: Any) -> bytes:
    return rewrite_xlsx_part(xlsx_bytes(table(people(2))), "xl/worksheets/sheet1.xml", change)


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        # Issue #13, item 3: each used to keep an import busy for minutes.
        ("far.xlsx", _xlsx_with_sheet(lambda xml: xml.replace(b'<row r="3"', b'<row r="1000000000"')), 422,
         "bad_xlsx"),
        ("bomb.xlsx", _xlsx_with_sheet(lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b" " * 20_000_000)),
         422, "bad_xlsx"),
        ("empty.csv", b"", 422, "empty_file"),
        ("blank.csv", b"  \r\n\r\n", 422, "empty_file"),
        ("garbage.csv", bytes(range(256)) * 40, 422, "bad_encoding"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4000, 422, "unsupported_format"),
        ("broken.xlsx", _broken_xlsx(), 422, "bad_xlsx"),
        ("notbook.xlsx", _xlsx_without_workbook(), 422, "bad_xlsx"),
        ("headerless.csv", b"1,2,3\r\n4,5,6\r\n", 422, "no_header"),
        ("scan.pdf", b"%PDF-1.7\n" + b"x" * 100, 422, "unsupported_format"),
    ],
)
def test_bad_files_are_4xx_with_code_message_details(
    client: TestClient, db: Session, officer_a: dict[str, str], name: str, data: bytes, status: int, code: str
) -> None:
    count = member_count(db)
    response = upload(client, officer_a, data, filename=name)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code and body["message"]
    assert body["details"][0]["message_vi"]
    assert member_count(db) == count


def test_too_large_file_is_413(client: TestClient, officer_a: dict[str, str]) -> None:
    response = upload(client, officer_a, b"a" * (20 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_missing_file_field_is_422(client: TestClient, officer_a: dict[str, str]) -> None:
    response = client.post("/v1/members/import", headers=officer_a, data={"chapter_code": BRANCH_A})
    assert response.status_code == 422
    assert set(response.json()) == {"code", "message", "details"}


@pytest.mark.parametrize("name", ["'; DROP TABLE members; --", "<script>alert(1)</script>", "Robert\x00'); --"])
def test_injection_strings_in_names_never_cause_a_500(
    client: TestClient, db: Session, officer_a: dict[str, str], name: str
) -> None:
    person = dataclasses.replace(people(1)[0], full_name=name)
    response = upload(client, officer_a, csv_bytes(table([person])))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        report = response.json()
        stored = db.scalars(select(Member.full_name)).all()
        # Either refused as a row error, or stored verbatim as harmless text (and the table still exists).
        assert report["failed"] == 1 or name in stored
        assert "<script>" not in json.dumps(report["problems"])


def test_names_the_card_cannot_carry_are_row_errors(client: TestClient, db: Session,
                                                    officer_a: dict[str, str]) -> None:
    long_name, bidi, good = people(3)
    rows = [dataclasses.replace(long_name, full_name=NAME_TOO_LONG_FOR_CARD),
            dataclasses.replace(bidi, full_name="Trần Thị \u2067Lan"), good]
    report = ok(upload(client, officer_a, csv_bytes(table(rows))))
    assert report["created"] == 1
    errors = errors_of(report)
    assert [(e["row"], e["field"], e["code"]) for e in errors] == [
        (2, "full_name", "too_long"), (3, "full_name", "invisible_characters")]
    assert "U+2067" in errors[1]["message_vi"]


def test_report_never_contains_id_numbers_phones_or_birth_dates(
    client: TestClient, officer_a: dict[str, str]
) -> None:
    good = people(1, province="079")[0]
    rows = table([good])
    rows[1][3] = good.id_number[1:]  # repaired, with a warning
    wrong_year = citizen_id(date(1970, 5, 6))
    secrets_in_file = [good.id_number[1:], wrong_year, "0212349876", "07/08/2091", "987654321", "7.91235E+10"]
    rows += [
        ["Nguyễn Thị A", "06/05/1980", "Nữ", wrong_year, "0212349876", ""],  # year disagrees, bad phone
        ["Nguyễn Thị B", "07/08/2091", "Nữ", "7.91235E+10", "", ""],  # future date, precision lost
        ["Nguyễn Thị C", "01/01/1980", "Nữ", "987654321", "", ""],  # a 9-digit value in the CCCD column
    ]
    report = ok(upload(client, officer_a, csv_bytes(rows), dry_run=True))
    assert report["failed"] == 3 and len(report["problems"]) >= 5
    text = json.dumps(report, ensure_ascii=False)
    for value in secrets_in_file:
        assert value not in text


# ---------------------------------------------------------------------------------------------------------
# Audit


def test_commit_writes_audit_entries_with_member_ids(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    existing = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Lan")
    persons = people(2)
    rows = table(persons)
    rows.append(["Trần Thị Lan Anh", existing.birth_date.strftime("%d/%m/%Y"), "Nữ",
                 cipher.decrypt("id_number", existing.id_number_ciphertext or b""), "", ""])
    since = db.scalar(select(func.max(AuditEntry.id))) or 0
    data = csv_bytes(rows)
    report = ok(upload(client, officer_a, data, filename="hoi-vien.csv"))
    assert (report["created"], report["updated"]) == (2, 1)
    entries = {e.action: e for e in db.scalars(select(AuditEntry).where(AuditEntry.id > since))}
    assert set(entries) == {"member.import", "member.import_create", "member.import_update"}
    created_ids = {by_id_number(db, cipher, p.id_number).id for p in persons}
    assert set(entries["member.import_create"].details["member_ids"]) == created_ids
    assert entries["member.import_update"].details["member_ids"] == [existing.id]
    summary = entries["member.import"]
    assert summary.details["created"] == 2 and summary.details["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert summary.actor_id == tree.officers["t.officer.a"].id
    assert summary.chapter_path == tree.branch_a.path
    assert all(e.request_id for e in entries.values())


def test_an_upload_file_name_never_reaches_the_audit_log(client: TestClient, db: Session,
                                                         officer_a: dict[str, str]) -> None:
    named_after = people(1)[0].id_number  # People name files after a member or her ID number.
    data = csv_bytes(table(people(1)))
    ok(upload(client, officer_a, data, filename=f"{named_after}.csv"))
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action.like("member.import%"))).all()
    assert {e.action for e in entries} == {"member.import", "member.import_create"}
    for entry in entries:
        assert named_after not in json.dumps(entry.details)
        assert entry.details["file_sha256"] == hashlib.sha256(data).hexdigest()


def test_dry_run_writes_no_audit_entry(client: TestClient, db: Session, officer_a: dict[str, str]) -> None:
    before = audit_count(db)
    assert ok(upload(client, officer_a, csv_bytes(table(people(2))), dry_run=True))["created"] == 2
    assert audit_count(db) == before


# ---------------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated temporary SQLite database with one branch (code CLI-01), configured through the environment."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.chdir(tmp_path)  # no .env or var/ of the checkout leaks in
    monkeypatch.setenv("CARDSVC_DATABASE_URL", url)
    monkeypatch.setenv("CARDSVC_SECRET_KEY", TEST_SECRET)
    assert main(["migrate"]) == 0
    engine = make_engine(url)
    with Session(engine) as session:
        actor = system_actor("tests")
        root = chapters.create_chapter(session, actor, code="CLI", name="Trung ương", level="central", parent_id=None)
        chapters.create_chapter(session, actor, code="CLI-01", name="Chi hội 1", level="branch", parent_id=root.id)
    engine.dispose()
    return url


def test_cli_import_prints_summary_progress_and_exit_code(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    persons = people(3)
    rows = table(persons)
    rows[2][1] = "32/13/1990"
    path = tmp_path / "danh-sach.csv"
    path.write_bytes(csv_bytes(rows, encoding="utf-8-sig"))
    capsys.readouterr()

    assert main(["import", str(path), "--chapter", "CLI-01", "--dry-run"]) == 1
    out = capsys.readouterr()
    assert "would import: 2 new, 0 updated, 0 unchanged, 1 rows with errors (of 3)" in out.out
    assert "dòng 3, lỗi: Cột 'Ngày sinh' (B): " in out.out and "row 3, error: Column 'Ngày sinh' (B): " in out.out
    assert "birth_date" not in out.out
    assert "sẽ nhập: 2 mới, 0 cập nhật, 0 không đổi, 1 dòng lỗi (trên 3)" in out.out
    assert "3/3 rows" in out.err and "[##############################]" in out.err

    assert main(["import", str(path), "--chapter", "CLI-01"]) == 1
    assert "imported: 2 new, 0 updated, 0 unchanged, 1 rows with errors (of 3)" in capsys.readouterr().out

    del rows[2]
    path.write_bytes(csv_bytes(rows, encoding="utf-8-sig"))
    assert main(["import", str(path), "--chapter", "CLI-01"]) == 0
    assert "imported: 0 new, 0 updated, 2 unchanged, 0 rows with errors (of 2)" in capsys.readouterr().out
    engine = make_engine(cli_env)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 2
    engine.dispose()


def test_cli_unknown_chapter_exits_2(cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(csv_bytes(table(people(1))))
    assert main(["import", str(path), "--chapter", "NOPE"]) == 2
    assert "no chapter with code NOPE" in capsys.readouterr().err


def test_cli_bad_file_exits_2(cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    assert main(["import", str(path), "--chapter", "CLI-01"]) == 2
    err = capsys.readouterr().err
    assert "lỗi: Không đọc được tệp Excel cũ (.xls)" in err and "Old Excel files" in err


def test_cli_lists_ignored_columns_and_skipped_rows_and_writes_the_errors_file(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    persons = people(2)
    rows = [["DANH SÁCH HỘI VIÊN"], [*HEADER_VI, "Quê quán"], *([*p.cells(), "Huế"] for p in persons),
            ["Tổng cộng: 2"]]
    rows[2][1] = "31/02/1980"
    path = tmp_path / "ds.csv"
    path.write_bytes(csv_bytes(rows))
    errors = tmp_path / "ds-loi.csv"
    assert main(["import", str(path), "--chapter", "CLI-01", "--dry-run", "--errors-file", str(errors)]) == 1
    out = capsys.readouterr().out
    assert "cột không dùng / columns not used: Quê quán" in out
    assert "bỏ qua / skipped: 1 × Dòng tiêu đề phía trên dòng tên cột" in out and "(1)" in out
    assert "bỏ qua / skipped: 1 × Dòng tổng cộng" in out
    lines = errors.read_bytes().decode("utf-8-sig").splitlines()
    assert lines[0] == "DANH SÁCH HỘI VIÊN" and lines[1].endswith(",Quê quán,Lỗi / Errors")
    assert lines[2].endswith(",Huế,\"Cột 'Ngày sinh' (B): Ngày không hợp lệ. Hãy ghi theo dạng ngày/tháng/năm, "
                             'ví dụ 25/03/1985."')
    assert lines[3].endswith(",Huế") and lines[4] == "Tổng cộng: 2"



def test_imported_member_has_the_same_stored_columns_as_one_created_through_the_api(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    # The import builds rows without ORM objects; they must match what members.create_member stores.
    imported_person, created_person = people(2)
    imported_person = dataclasses.replace(imported_person, full_name="Đỗ Thị Ngọc Ánh")
    ok(upload(client, officer_a, csv_bytes(table([imported_person]))))
    created = make_member(db, cipher, tree.branch_a, full_name="Đỗ Thị Ngọc Ánh", birth_date=created_person.birth,
                          id_number=created_person.id_number, phone=imported_person.phone, join_date=None)
    imported = by_id_number(db, cipher, imported_person.id_number)
    same = ("full_name", "name_search", "sort_key", "gender", "phone_index", "phone_masked", "status", "honorary",
            "chapter_id", "birth_date_precision", "old_id_number_index", "old_id_number_masked")
    assert {c: getattr(imported, c) for c in same} == {c: getattr(created, c) for c in same}
    assert imported.id_number_masked == imported_person.id_number[:3] + "*******" \
        + imported_person.id_number[-2:]
    assert cipher.decrypt("id_number", imported.id_number_ciphertext or b"") == imported_person.id_number
    assert stored_value(imported, "phone", cipher) == stored_value(created, "phone", cipher)
    assert imported.status_changed_on == vietnam_today()
    assert imported.created_at.tzinfo is not None


def test_male_member_must_be_honorary(client: TestClient, officer_a: dict[str, str]) -> None:
    person = people(1)[0]
    rows = table([person])
    rows[1][2] = "Nam"
    report = ok(upload(client, officer_a, csv_bytes(rows), dry_run=True))
    assert (report["created"], report["failed"]) == (0, 1)
    assert {p["code"] for p in errors_of(report)} >= {"male_member"}


def test_year_only_list_keeps_the_full_birth_date_on_record(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    person = people(1)[0]
    ok(upload(client, officer_a, csv_bytes(table([person]))))
    rows = table([person])
    rows[1][1] = str(person.birth.year)
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["updated"], report["unchanged"]) == (0, 1)
    stored = by_id_number(db, cipher, person.id_number)
    assert (stored.birth_date, stored.birth_date_precision) == (person.birth, "day")


# ---------------------------------------------------------------------------------------------------------
# Real spreadsheets (issue #13, item 4): titles, signatures, merged cells, officers' headers, short reports


def _real_sheet(persons: list[Person]) -> bytes:
    """A chapter's list as officers keep it: a title, a header, a column-number row, the members with the
    chapter code merged down over them, a total and a signature block."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for line in (["DANH SÁCH HỘI VIÊN CHI HỘI BA ĐÌNH 1"], ["(Cập nhật ngày 12/3/2025)"], []):
        sheet.append(line)
    sheet.append(["STT", "Họ và tên", "Ngày sinh", "Số CCCD/CMND", "Mã chi hội", "Ghi chú"])
    sheet.append(["(1)", "(2)", "(3)", "(4)", "(5)", "(6)"])
    for index, person in enumerate(persons, start=1):
        sheet.append([index, person.full_name, person.birth.strftime("%d/%m/%Y"), person.id_number,
                      BRANCH_A if index == 1 else None, ""])
    sheet.merge_cells(f"E6:E{5 + len(persons)}")
    for line in ([], ["", f"Tổng cộng: {len(persons)} hội viên"], ["", "", "", "Ba Đình, ngày 12 tháng 3 năm 2025"],
                 ["", "NGƯỜI LẬP BIỂU", "", "CHI HỘI TRƯỞNG"], ["", "(Ký, ghi rõ họ tên)"], [],
                 ["", "Phạm Thị Thu", "", "Trần Thị Hoa"]):
        sheet.append(line)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_real_sheet_imports_its_members_and_reports_what_it_skipped(
    client: TestClient, db: Session, cipher: PiiCipher, officer_a: dict[str, str]
) -> None:
    persons = people(3)
    report = ok(upload(client, officer_a, _real_sheet(persons), filename="ds.xlsx", chapter_code=None))
    assert (report["rows_total"], report["created"], report["failed"]) == (3, 3, 0)
    assert report["problems"] == [] and report["errors_file"] is None
    assert report["header_row"] == 4
    assert {c["field"]: (c["header"], c["letter"]) for c in report["columns"]} == {
        "full_name": ("Họ và tên", "B"), "birth_date": ("Ngày sinh", "C"), "id_number": ("Số CCCD/CMND", "D"),
        "old_id_number": ("Số CCCD/CMND", "D"), "chapter_code": ("Mã chi hội", "E")}
    assert report["ignored_columns"] == ["Ghi chú"]
    assert [(s["reason"], s["count"], s["rows"]) for s in report["skipped_rows"]] == [
        ("title", 2, [1, 2]), ("column_numbers", 1, [5]), ("total", 1, [10]), ("signature", 4, [11, 12, 13, 15])]
    assert all(s["message_vi"] for s in report["skipped_rows"])
    for person in persons:  # the merged chapter code reached every row of the merge
        assert by_id_number(db, cipher, person.id_number).chapter.code == BRANCH_A


def test_a_file_whose_every_row_fails_gives_a_short_report(client: TestClient, officer_a: dict[str, str]) -> None:
    rows = table(people(3000))
    for line in rows[1:]:
        line[1] = "31/02/1980"  # no such day
    response = upload(client, officer_a, csv_bytes(rows), dry_run=True)
    report = ok(response)
    assert (report["failed"], report["problems_total"]) == (3000, 3000)
    [kind] = report["problem_counts"]
    assert (kind["field"], kind["column"], kind["count"]) == ("birth_date", "'Ngày sinh' (B)", 3000)
    assert kind["rows"] == list(range(2, 22))
    assert [p["row"] for p in report["problems"]] == list(range(2, 22))
    assert len(response.content) < 20_000


def test_messages_name_the_files_own_column_headers(client: TestClient, officer_a: dict[str, str]) -> None:
    person = people(1)[0]
    rows = [["STT", "Họ tên hội viên", "Ngày tháng năm sinh", "Giới tính", "Số định danh cá nhân"],
            ["1", person.full_name, "32/01/1980", "Nữ", "12345"]]
    report = ok(upload(client, officer_a, csv_bytes(rows), dry_run=True))
    messages = {p["field"]: (p["column"], p["message_vi"], p["message"]) for p in errors_of(report)}
    assert messages["birth_date"][0] == "'Ngày tháng năm sinh' (C)"
    assert messages["birth_date"][1].startswith("Cột 'Ngày tháng năm sinh' (C): ")
    assert messages["birth_date"][2].startswith("Column 'Ngày tháng năm sinh' (C): ")
    assert messages["id_number"][1].startswith("Cột 'Số định danh cá nhân' (E): ")
    text = json.dumps([p["message_vi"] + p["message"] for p in report["problems"] + report["problem_counts"]])
    for internal in ("birth_date", "id_number", "full_name"):
        assert internal not in text


def test_a_list_keyed_by_member_number_updates_those_members(
    client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, officer_a: dict[str, str]
) -> None:
    first = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Lan")
    second = make_member(db, cipher, tree.branch_a, full_name="Lê Thị Mai")
    before = {m.id: (m.birth_date, m.gender, m.id_number_index) for m in (first, second)}
    unknown = format_member_number(987_654_321)
    rows = [["Mã hội viên", "Họ và tên", "Số điện thoại"],
            [first.member_number, "Trần Thị Lan", "0933333333"],
            [second.member_number, "Lê Thị Mai", "0987654321"],
            [unknown, "Đỗ Thị Hà", "0901234567"]]
    count = member_count(db)
    report = ok(upload(client, officer_a, csv_bytes(rows)))
    assert (report["updated"], report["created"], report["failed"]) == (2, 0, 1)
    [problem] = errors_of(report)
    assert (problem["row"], problem["code"], problem["column"]) == (4, "unknown_member_number", "'Mã hội viên' (A)")
    assert member_count(db) == count
    db.expire_all()
    for member, phone in ((first, "+84933333333"), (second, "+84987654321")):
        stored = db.get_one(Member, member.id)
        assert stored_value(stored, "phone", cipher) == phone
        assert (stored.birth_date, stored.gender, stored.id_number_index) == before[member.id]
        assert stored.chapter_id == tree.branch_a.id


def _download(client: TestClient, headers: dict[str, str], report: dict[str, Any], fmt: str = "xlsx") -> Any:
    token = report["errors_file"]["token"]
    return client.get(f"/v1/members/import/errors/{token}", params={"format": fmt}, headers=headers)


def test_the_file_comes_back_with_an_error_column_to_correct_and_upload_again(
    client: TestClient, db: Session, officer_a: dict[str, str]
) -> None:
    persons = people(3)
    data = _real_sheet(persons)
    broken = rewrite_xlsx_part(data, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(
        persons[1].birth.strftime("%d/%m/%Y").encode(), b"31/02/1980"))
    report = ok(upload(client, officer_a, broken, filename="Danh sách.xlsx", chapter_code=None, dry_run=True))
    assert report["failed"] == 1
    assert report["errors_file"]["token"] and report["errors_file"]["expires_at"]

    response = _download(client, officer_a, report)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "Danh%20s%C3%A1ch-loi.xlsx" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert sheet["A1"].value == "DANH SÁCH HỘI VIÊN CHI HỘI BA ĐÌNH 1"
    assert [cell.value for cell in sheet[4]] == ["STT", "Họ và tên", "Ngày sinh", "Số CCCD/CMND", "Mã chi hội",
                                                 "Ghi chú", "Lỗi / Errors"]
    assert sheet["G7"].value.startswith("Cột 'Ngày sinh' (C): ")
    assert sheet["G6"].value is None and sheet["G8"].value is None
    assert sheet["E8"].value == BRANCH_A  # merged cells come back filled in
    assert sheet["B15"].value == "Phạm Thị Thu"

    sheet["C7"].value = persons[1].birth.strftime("%d/%m/%Y")
    corrected = io.BytesIO()
    sheet.parent.save(corrected)
    again = ok(upload(client, officer_a, corrected.getvalue(), filename="sua.xlsx", chapter_code=None))
    assert (again["created"], again["failed"], again["ignored_columns"]) == (3, 0, ["Ghi chú"])

    csv_response = _download(client, officer_a, report, "csv")
    assert csv_response.status_code == 200
    lines = csv_response.content.decode("utf-8-sig").splitlines()
    assert lines[3].endswith(",Lỗi / Errors") and "Cột 'Ngày sinh' (C)" in lines[6]


def test_the_kept_upload_is_encrypted_the_uploaders_only_and_expires(
    client: TestClient, app: Any, officer_a: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    person = people(1)[0]
    rows = table([person])
    rows[1][1] = "31/02/1980"
    report = ok(upload(client, officer_a, csv_bytes(rows), dry_run=True))
    token = report["errors_file"]["token"]
    directory = app.state.settings.import_download_dir
    [kept] = [path for path in directory.iterdir() if path.name.endswith(hashlib.sha256(token.encode()).hexdigest())]
    assert person.id_number.encode() not in kept.read_bytes() and token not in kept.name
    assert _download(client, login(client, "t.officer.commune"), report).status_code == 404
    assert _download(client, officer_a, report).status_code == 200

    later = datetime.now(UTC) + timedelta(minutes=app.state.settings.import_download_minutes + 1)
    monkeypatch.setattr(app.state.upload_keeper, "_clock", lambda: later)
    expired = _download(client, officer_a, report)
    assert (expired.status_code, expired.json()["code"]) == (404, "download_expired")
    assert not kept.exists()


def test_a_clean_file_is_not_kept(client: TestClient, app: Any, officer_a: dict[str, str]) -> None:
    directory = app.state.settings.import_download_dir
    before = set(directory.iterdir())
    assert ok(upload(client, officer_a, csv_bytes(table(people(2))), dry_run=True))["errors_file"] is None
    assert set(directory.iterdir()) == before


def test_a_download_directory_that_cannot_be_written_keeps_nothing_and_raises_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    keeper = UploadKeeper(blocker / "downloads", b"k" * 32, minutes=15)
    assert keeper.keep(KeptUpload(data=b"x", filename="ds.csv", chapter_code=None, officer_id=1)) is None
