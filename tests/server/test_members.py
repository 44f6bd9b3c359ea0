"""Members: validation, encryption and masking of ID numbers, search, status, transfer, consent, audit."""

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, Member
from cardsvc.importing.rows import is_valid_member_number
from cardsvc.security import PiiCipher
from tests.conftest import NAME_TOO_LONG_FOR_CARD, Tree, id_number_for, login, make_member


def _body(tree: Tree, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "chapter_id": tree.branch_a.id,
        "full_name": "NGUYỄN THỊ PHƯƠNG THẢO",
        "birth_date": "12/04/1990",
        "gender": "female",
        "id_number": id_number_for(date(1990, 4, 12)),
        "phone": "0912 345 678",
        "join_date": "2015-03-08",
    }
    body.update(overrides)
    return body


def test_create_member_normalises_and_encrypts(client: TestClient, tree: Tree, db: Session,
                                               cipher: PiiCipher) -> None:
    body = _body(tree)
    response = client.post("/v1/members", json=body, headers=login(client, "t.officer.a"))
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["full_name"] == "Nguyễn Thị Phương Thảo"
    assert out["phone"] == "+84******678"
    assert out["birth_date"] == "1990-04-12"
    assert is_valid_member_number(out["member_number"])
    id_number = str(body["id_number"])
    assert out["id_number"] == f"**********{id_number[-2:]}"
    stored = db.get_one(Member, out["id"])
    assert cipher.decrypt("phone", stored.phone_ciphertext or b"") == "+84912345678"
    assert stored.id_number_ciphertext is not None
    assert id_number.encode() not in stored.id_number_ciphertext
    assert cipher.decrypt("id_number", stored.id_number_ciphertext) == id_number
    assert stored.id_number_index == cipher.blind_index("id_number", id_number)


def test_nfd_input_is_stored_nfc(client: TestClient, tree: Tree) -> None:
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Trần Thị Huyền")
    response = client.post("/v1/members", json=_body(tree, full_name=nfd), headers=login(client, "t.officer.a"))
    assert response.json()["full_name"] == unicodedata.normalize("NFC", "Trần Thị Huyền")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id_number": "079123456789"}, "id_number"),  # century/gender digit says male, born 1912
        ({"id_number": "999191123456"}, "id_number"),  # foreign code, year digits 91 but born 1990
        ({"id_number": "12345"}, "id_number"),
        ({"phone": "0212345678"}, "phone"),
        ({"birth_date": "31/02/1990"}, "birth_date"),
        ({"full_name": "Robert'); DROP TABLE members;--"}, "full_name"),
        ({"join_date": "01/01/2000", "birth_date": "01/01/1995",
          "id_number": id_number_for(date(1995, 1, 1))}, "birth_date"),  # only 5 years old when joining
    ],
)
def test_invalid_fields_are_422_naming_the_field(client: TestClient, tree: Tree, overrides: dict[str, object],
                                                 field: str) -> None:
    response = client.post("/v1/members", json=_body(tree, **overrides), headers=login(client, "t.officer.a"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_failed"
    assert field in {d["field"] for d in body["details"]}


@pytest.mark.parametrize(
    ("full_name", "code", "vietnamese"),
    [
        (NAME_TOO_LONG_FOR_CARD, "too_long", "Họ tên quá dài để ghi lên thẻ"),
        ("Nguyễn Thị \u202eạmaN", "invisible_characters", "ký tự điều khiển hướng chữ (U+202E)"),
        ("Nguyễn Thị\u200b Lan", "invisible_characters", "ký tự ẩn"),
    ],
)
def test_a_name_the_card_cannot_carry_is_422_on_create_and_update(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, full_name: str, code: str,
        vietnamese: str) -> None:
    headers = login(client, "t.officer.a")
    member = make_member(db, cipher, tree.branch_a)
    created = client.post("/v1/members", json=_body(tree, full_name=full_name), headers=headers)
    updated = client.patch(f"/v1/members/{member.id}", json={"full_name": full_name}, headers=headers)
    for response in (created, updated):
        assert response.status_code == 422, response.text
        [detail] = response.json()["details"]
        assert (detail["field"], detail["code"]) == ("full_name", code)
        assert vietnamese in detail["message_vi"]
    db.expire_all()
    assert db.get_one(Member, member.id).full_name == "Nguyễn Thị Lan"


def test_a_man_can_only_be_honorary(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    male_id = id_number_for(date(1970, 5, 5), female=False)
    refused = client.post("/v1/members", json=_body(tree, gender="male", id_number=male_id, birth_date="1970"),
                          headers=headers)
    assert refused.status_code == 422
    accepted = client.post("/v1/members", json=_body(tree, gender="male", id_number=male_id, birth_date="1970",
                                                     honorary=True), headers=headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["birth_date_precision"] == "year"


def test_duplicate_id_number_is_409(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    existing = make_member(db, cipher, tree.branch_a, birth_date=date(1990, 4, 12))
    id_number = cipher.decrypt("id_number", existing.id_number_ciphertext or b"")
    response = client.post("/v1/members", json=_body(tree, id_number=id_number), headers=login(client, "t.officer.a"))
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_member"
    assert response.json()["details"]["member_id"] == existing.id


def test_duplicate_outside_scope_does_not_reveal_the_member(client: TestClient, tree: Tree, db: Session,
                                                           cipher: PiiCipher) -> None:
    existing = make_member(db, cipher, tree.branch_b, birth_date=date(1990, 4, 12))
    id_number = cipher.decrypt("id_number", existing.id_number_ciphertext or b"")
    response = client.post("/v1/members", json=_body(tree, id_number=id_number), headers=login(client, "t.officer.a"))
    assert response.status_code == 409
    assert "member_id" not in response.json()["details"]


def test_reveal_needs_pii_and_is_audited(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    plain = cipher.decrypt("id_number", member.id_number_ciphertext or b"")
    refused = client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.officer.a"))
    assert refused.status_code == 403
    assert refused.json()["code"] == "pii_permission_required"
    shown = client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.officer.a.pii"))
    assert shown.status_code == 200
    assert shown.json()["id_number"] == plain
    assert shown.json()["id_number_masked"] is False
    reads = db.scalars(select(AuditEntry).where(AuditEntry.action == "member.pii_read")).all()
    assert [(r.actor_name, r.target_id) for r in reads] == [("t.officer.a.pii", str(member.id))]
    assert plain not in str(reads[0].details)


def test_search_is_accent_insensitive(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    thao = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo")
    dang = make_member(db, cipher, tree.branch_a, full_name="Đặng Thu Hà")
    make_member(db, cipher, tree.branch_a, full_name="Lê Thị Thanh")
    headers = login(client, "t.officer.a")

    def ids(query: str) -> set[int]:
        response = client.get("/v1/members", params={"q": query}, headers=headers)
        assert response.status_code == 200
        return {m["id"] for m in response.json()}

    assert ids("nguyen thi thao") == {thao.id}
    assert ids("NGUYỄN THẢO") == {thao.id}
    assert ids("dang ha") == {dang.id}
    assert ids("Đặng") == {dang.id}
    assert ids("phuong th") == {thao.id}  # the last word is a prefix (type-ahead)
    assert ids("tha") == {thao.id, ids("le thanh").pop()}
    assert ids("thi") == {thao.id, ids("le thanh").pop()}
    assert ids("%") == set()  # wildcards are stripped, never injected
    assert ids("th%o") == set()


def test_search_by_id_number_and_member_number(client: TestClient, tree: Tree, db: Session,
                                              cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    plain = cipher.decrypt("id_number", member.id_number_ciphertext or b"")
    headers = login(client, "t.officer.a")
    by_id = client.post("/v1/members/lookup", json={"id_number": plain}, headers=headers).json()
    assert [m["id"] for m in by_id] == [member.id]
    by_number = client.get("/v1/members", params={"member_number": member.member_number}, headers=headers).json()
    assert [m["id"] for m in by_number] == [member.id]
    assert client.post("/v1/members/lookup", json={"id_number": plain}, headers=login(client, "t.officer.b")).json() \
        == []


def test_list_sorts_by_given_name(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    for name in ("Trần Thị Yến", "Nguyễn Thị Anh", "Lê Văn Bình"):
        make_member(db, cipher, tree.branch_a, full_name=name, gender="female")
    response = client.get("/v1/members", params={"chapter_id": tree.branch_a.id}, headers=login(client, "t.admin"))
    assert [m["full_name"] for m in response.json()] == ["Nguyễn Thị Anh", "Lê Văn Bình", "Trần Thị Yến"]


def test_status_change_with_reason_and_history(client: TestClient, tree: Tree, db: Session,
                                               cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    no_reason = client.post(f"/v1/members/{member.id}/status", json={"status": "left"}, headers=headers)
    assert no_reason.status_code == 422
    left = client.post(f"/v1/members/{member.id}/status",
                       json={"status": "left", "reason": "chuyển nơi ở", "effective_on": "2026-01-15"},
                       headers=headers)
    assert left.status_code == 200, left.text
    assert left.json()["status"] == "left"
    assert left.json()["status_changed_on"] == "2026-01-15"
    history = client.get(f"/v1/members/{member.id}/status-history", headers=headers).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [(None, "active"), ("active", "left")]
    filtered = client.get("/v1/members", params={"status": "left"}, headers=headers).json()
    assert [m["id"] for m in filtered] == [member.id]


def test_deceased_is_final_except_for_admins(client: TestClient, tree: Tree, db: Session,
                                             cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    officer = login(client, "t.officer.a")
    client.post(f"/v1/members/{member.id}/status", json={"status": "deceased", "reason": "báo tử"}, headers=officer)
    again = client.post(f"/v1/members/{member.id}/status", json={"status": "active"}, headers=officer)
    assert again.status_code == 403
    fixed = client.post(f"/v1/members/{member.id}/status", json={"status": "active", "reason": "nhầm"},
                        headers=login(client, "t.admin"))
    assert fixed.status_code == 200


def test_update_and_transfer(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.admin")
    response = client.patch(f"/v1/members/{member.id}", json={"phone": "+84 98 765 4321", "chapter_id":
                                                               tree.branch_b.id}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == "+84******321"
    db.refresh(member)
    assert cipher.decrypt("phone", member.phone_ciphertext or b"") == "+84987654321"
    assert response.json()["chapter"]["id"] == tree.branch_b.id
    entries = db.scalars(select(AuditEntry).where(AuditEntry.target_id == str(member.id))).all()
    update = next(e for e in entries if e.action == "member.update")
    assert set(update.details["fields"]) == {"phone", "chapter_id"}
    assert "+84987654321" not in str(update.details)
    # Province A's officer no longer sees her, and cannot move her back either.
    assert client.get(f"/v1/members/{member.id}", headers=login(client, "t.officer.a")).status_code == 404


def test_officer_cannot_transfer_out_of_scope(client: TestClient, tree: Tree, db: Session,
                                              cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    response = client.patch(f"/v1/members/{member.id}", json={"chapter_id": tree.branch_b.id},
                            headers=login(client, "t.officer.a"))
    assert response.status_code == 404
    db.expire_all()
    assert db.get_one(Member, member.id).chapter_id == tree.branch_a.id


def test_member_number_is_immutable(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    response = client.patch(f"/v1/members/{member.id}", json={"member_number": "0000000000"},
                            headers=login(client, "t.admin"))
    assert response.status_code == 422


def test_consent_record_and_withdraw(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    url = f"/v1/members/{member.id}/consents"
    created = client.post(url, json={"purpose": "identity_verification", "method": "paper_form",
                                     "evidence_ref": "Phiếu số 12/2026"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["active"] is True
    again = client.post(url, json={"purpose": "identity_verification", "method": "app"}, headers=headers)
    assert again.status_code == 409
    withdrawn = client.post(f"{url}/{created.json()['id']}/withdraw", json={"note": "hội viên rút lại"},
                            headers=headers)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] is False
    renewed = client.post(url, json={"purpose": "identity_verification", "method": "app"}, headers=headers)
    assert renewed.status_code == 201
    assert len(client.get(url, headers=headers).json()) == 2
    actions = [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.target_type == "consent"))]
    assert actions == ["consent.record", "consent.withdraw", "consent.record"]


def test_viewer_reads_but_cannot_write(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.viewer.a")
    assert client.get(f"/v1/members/{member.id}", headers=headers).status_code == 200
    response = client.post("/v1/members", json=_body(tree), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "read_only"
