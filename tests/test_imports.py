"""Member-list imports through the real API (``POST /v1/members/import``) and the ``cardsvc import`` command."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.cli import main
from cardsvc.db.models import AuditEntry, Counter, Member, MemberStatusChange
from cardsvc.db.session import make_engine
from cardsvc.importing.rows import format_member_number
from cardsvc.security import PiiCipher
from cardsvc.services import chapters
from cardsvc.services.context import system_actor
from cardsvc.services.pii import stored_value
from tests.conftest import TEST_SECRET, Tree, login, make_member
from tests.fixtures_import import (
    HEADER_EN,
    HEADER_VI,
    Person,
    citizen_id,
    csv_bytes,
    people,
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
    db.expire_all()
    stored = db.get_one(Member, elsewhere.id)
    assert (stored.full_name, stored.chapter_id) == ("Lý Thị Sen", tree.branch_b.id)


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


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
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
    assert "row 3, column birth_date: error:" in out.out
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
    assert "Old Excel files" in capsys.readouterr().err



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
    assert imported.status_changed_on == date.today()
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
