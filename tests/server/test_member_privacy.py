"""What a role may see of a member (issue #13, item 5): masks by role everywhere a member is shown, phone numbers
encrypted at rest with a blind index, and the audited reveal."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, Member
from cardsvc.security import PiiCipher
from tests.conftest import Tree, login, make_member
from tests.server.importing.builders import csv_bytes, people, table
from tests.server.test_admin_pages_http import page_login

BIRTH = date(1987, 9, 21)
ID_NUMBER = "079187654321"
PHONE = "0912345678"


@pytest.fixture
def member(db: Session, cipher: PiiCipher, tree: Tree) -> Member:
    return make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo", birth_date=BIRTH,
                       id_number=ID_NUMBER, phone=PHONE)


def _shown(body: dict[str, object]) -> tuple[object, ...]:
    return body["id_number"], body["birth_date"], body["birth_date_precision"], body["phone"]


def test_a_viewer_sees_two_id_digits_the_birth_year_and_two_phone_digits(
        client: TestClient, member: Member) -> None:
    headers = login(client, "t.viewer.a")
    viewer_mask = ("**********21", "1987-01-01", "year", "+84*******78")
    one = client.get(f"/v1/members/{member.id}", headers=headers)
    assert one.status_code == 200, one.text
    assert _shown(one.json()) == viewer_mask
    assert one.json()["id_number_masked"] is True
    found = client.get("/v1/members", params={"q": "phuong thao"}, headers=headers).json()
    assert [_shown(m) for m in found] == [viewer_mask]
    looked_up = client.post("/v1/members/lookup", json={"id_number": ID_NUMBER}, headers=headers).json()
    assert [_shown(m) for m in looked_up] == [viewer_mask]
    for body in (one.text, json.dumps(found)):
        for secret in ("1987-09-21", "12345678", "079*"):
            assert secret not in body, secret


def test_an_officer_sees_the_birth_date_but_neither_the_birthplace_code_nor_the_phone(
        client: TestClient, member: Member) -> None:
    for username in ("t.officer.a", "t.officer.a.pii", "t.admin"):
        shown = client.get(f"/v1/members/{member.id}", headers=login(client, username)).json()
        assert _shown(shown) == ("**********21", "1987-09-21", "day", "+84******678"), username


def test_reveal_shows_everything_in_clear_and_audits_every_field(
        client: TestClient, db: Session, member: Member) -> None:
    shown = client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.officer.a.pii")).json()
    assert _shown(shown) == (ID_NUMBER, "1987-09-21", "day", "+84912345678")
    assert shown["id_number_masked"] is False
    read = db.scalars(select(AuditEntry).where(AuditEntry.action == "member.pii_read")).one()
    assert set(read.details["fields"]) == {"id_number", "old_id_number", "phone", "birth_date"}
    refused = client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.viewer.a"))
    assert refused.status_code == 403


def test_member_pages_mask_by_role(client: TestClient, member: Member) -> None:
    page_login(client, "t.viewer.a")
    detail = client.get(f"/admin/members/{member.id}").text
    results = client.get("/admin/members", params={"q": "phuong thao"}).text
    for html in (detail, results):
        assert "1987" in html
        for secret in ("21/09/1987", "079*", "12345678"):
            assert secret not in html, secret
    assert "**********21" in detail and "+84*******78" in detail
    client.cookies.clear()
    page_login(client, "t.officer.a")
    detail = client.get(f"/admin/members/{member.id}").text
    assert "21/09/1987" in detail and "**********21" in detail and "+84******678" in detail
    assert "079187654321" not in detail and "+84912345678" not in detail


def test_phone_numbers_are_stored_encrypted_with_a_blind_index(
        client: TestClient, connection: Connection, cipher: PiiCipher, member: Member) -> None:
    row = connection.execute(text("SELECT * FROM members WHERE id = :id"), {"id": member.id}).mappings().one()
    for column, value in row.items():
        assert "912345678" not in str(value), column
        assert b"912345678" not in (value if isinstance(value, bytes) else b""), column
    assert cipher.decrypt("phone", row["phone_ciphertext"]) == "+84912345678"
    assert row["phone_index"] == cipher.blind_index("phone", "+84912345678")


def test_changing_or_removing_a_phone_re_encrypts_it(client: TestClient, db: Session, cipher: PiiCipher,
                                                     member: Member) -> None:
    headers = login(client, "t.officer.a")
    changed = client.patch(f"/v1/members/{member.id}", json={"phone": "098 765 4321"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["phone"] == "+84******321"
    db.refresh(member)
    assert cipher.decrypt("phone", member.phone_ciphertext or b"") == "+84987654321"
    assert member.phone_index == cipher.blind_index("phone", "+84987654321")
    update = db.scalars(select(AuditEntry).where(AuditEntry.action == "member.update")).one()
    assert update.details["fields"] == ["phone"]
    # Another field changing keeps the stored phone.
    client.patch(f"/v1/members/{member.id}", json={"full_name": "Nguyễn Thị Thảo"}, headers=headers)
    db.refresh(member)
    assert cipher.decrypt("phone", member.phone_ciphertext or b"") == "+84987654321"


def test_look_up_by_phone_goes_through_the_blind_index_and_is_audited(
        client: TestClient, db: Session, tree: Tree, member: Member) -> None:
    headers = login(client, "t.officer.a")
    found = client.post("/v1/members/lookup", json={"phone": "(+84) 912-345-678"}, headers=headers)
    assert found.status_code == 200, found.text
    assert [m["id"] for m in found.json()] == [member.id]
    searches = db.scalars(select(AuditEntry).where(AuditEntry.action == "member.search_by_phone")).all()
    assert [e.details for e in searches] == [{"field": "phone"}]
    assert client.post("/v1/members/lookup", json={"phone": PHONE}, headers=login(client, "t.officer.b")).json() \
        == []
    bad = client.post("/v1/members/lookup", json={"phone": "0212345678"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "phone"
    both = client.post("/v1/members/lookup", json={"phone": PHONE, "id_number": ID_NUMBER}, headers=headers)
    assert both.status_code == 422


def test_imported_phones_are_encrypted_too(client: TestClient, db: Session, cipher: PiiCipher, tree: Tree) -> None:
    persons = people(3)
    response = client.post("/v1/members/import", headers=login(client, "t.officer.a"),
                           files={"file": ("list.csv", csv_bytes(table(persons)))},
                           data={"dry_run": "false", "chapter_code": tree.branch_a.code})
    assert response.status_code == 200 and response.json()["created"] == 3, response.text
    for person in persons:
        phone = "+84" + person.phone[1:]
        stored = db.scalars(select(Member).where(Member.phone_index == cipher.blind_index("phone", phone))).one()
        assert cipher.decrypt("phone", stored.phone_ciphertext or b"") == phone
        assert stored.phone_masked == phone[:3] + "******" + phone[-3:]



def test_a_blind_index_never_changes() -> None:
    # Stored indexes must keep matching what look-ups compute: HMAC-SHA256 over "field NUL value", in hex.
    cipher = PiiCipher(b"k" * 32, b"i" * 32)
    assert cipher.blind_index("phone", "+84912345678") == \
        "a2c7a48629283d66e4e0934b9527a0d43913386de01735a11aa07b47322bb980"
