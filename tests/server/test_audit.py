"""The audit trail: every write and PII read is recorded with actor and request id, and queried within scope."""

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry
from cardsvc.security import PiiCipher
from tests.conftest import Tree, login, make_member


def test_request_id_reaches_the_audit_entry(client: TestClient, tree: Tree, db: Session) -> None:
    headers = {**login(client, "t.officer.a"), "X-Request-ID": "req-42.abc"}
    response = client.patch(f"/v1/chapters/{tree.commune_a.id}", json={"name": "Phường Ba Đình (mới)"}, headers=headers)
    assert response.headers["X-Request-ID"] == "req-42.abc"
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "chapter.update")).one()
    assert entry.request_id == "req-42.abc"


def test_unsafe_request_ids_are_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline" * 10})
    assert response.headers["X-Request-ID"] != "bad id"
    assert len(response.headers["X-Request-ID"]) == 16


def test_officers_see_only_their_scope(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member_a = make_member(db, cipher, tree.branch_a)
    member_b = make_member(db, cipher, tree.branch_b)
    entries_a = client.get("/v1/audit?action=member", headers=login(client, "t.officer.a")).json()
    assert {e["target_id"] for e in entries_a} == {str(member_a.id)}
    entries_b = client.get("/v1/audit?action=member", headers=login(client, "t.officer.b")).json()
    assert {e["target_id"] for e in entries_b} == {str(member_b.id)}
    admin = client.get("/v1/audit?action=member", headers=login(client, "t.admin")).json()
    assert {e["target_id"] for e in admin} == {str(member_a.id), str(member_b.id)}


def test_entries_without_a_chapter_are_for_admins(client: TestClient, tree: Tree) -> None:
    login(client, "t.admin")  # An admin has no chapter: her login entry has no chapter path.
    officer = client.get("/v1/audit?action=auth.login", headers=login(client, "t.officer.a")).json()
    assert {e["actor_name"] for e in officer} == {"t.officer.a"}
    admin = client.get("/v1/audit?action=auth.login", headers=login(client, "t.admin")).json()
    assert {"t.admin", "t.officer.a"} <= {e["actor_name"] for e in admin}


def test_paging_with_before_id(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    first = client.get("/v1/audit?limit=3", headers=headers).json()
    assert len(first) == 3
    assert [e["id"] for e in first] == sorted((e["id"] for e in first), reverse=True)
    second = client.get(f"/v1/audit?limit=3&before_id={first[-1]['id']}", headers=headers).json()
    assert second and max(e["id"] for e in second) < first[-1]["id"]


def test_no_personal_data_in_audit_details(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a, phone="0901234567")
    plain = cipher.decrypt("id_number", member.id_number_ciphertext or b"")
    client.patch(f"/v1/members/{member.id}", json={"phone": "0987111222", "birth_date": "13/04/1985"},
                 headers=login(client, "t.officer.a"))
    client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.officer.a.pii"))
    dump = " ".join(str(e.details) for e in db.scalars(select(AuditEntry)))
    for secret in (plain, "0901234567", "+84901234567", "+84987111222", "1985-04-13", "1985-04-12"):
        assert secret not in dump


def test_card_link_tokens_are_cut_out_of_logged_paths() -> None:
    from cardsvc.app import loggable_path

    assert loggable_path("/m/AbCdEf0123456789xyz/card.json") == "/m/…/card.json"
    assert loggable_path("/v1/members/12") == "/v1/members/12"


def test_action_filter_takes_percent_and_underscore_literally(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    assert client.get("/v1/audit?action=auth.login", headers=headers).json()
    for pattern in ("%", "auth_login", "_"):
        assert client.get("/v1/audit", params={"action": pattern}, headers=headers).json() == [], pattern
