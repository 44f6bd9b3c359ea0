"""Members' personal card links: create/send/revoke, audit, the logging messenger, and what the public page shows."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, Member, MemberLink, SigningKey
from cardsvc.security import PiiCipher
from cardsvc.services import cards, consents
from cardsvc.services.member_links import message_text
from cardsvc.services.pii import mask_phone
from cardsvc.web.member import CONTENT_SECURITY_POLICY
from issuance.credential import credential_qr_text
from tests.conftest import SYSTEM, Tree, login, make_member

PHONE = "0912345678"


@pytest.fixture
def member(db: Session, cipher: PiiCipher, tree: Tree) -> Member:
    return make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo", phone=PHONE,
                       birth_date=date(1987, 9, 21))


@pytest.fixture
def officer(client: TestClient, tree: Tree) -> dict[str, str]:
    return login(client, "t.officer.a")


def _create(client: TestClient, headers: dict[str, str], member_id: int, channel: str = "paper") -> dict[str, object]:
    response = client.post(f"/v1/members/{member_id}/links", json={"channel": channel}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _token(body: dict[str, object]) -> str:
    return str(body["url"]).rsplit("/m/", 1)[1]


def _consent(db: Session, member: Member) -> None:
    consents.record_consent(db, SYSTEM, member.id, purpose="digital_card_messaging", method="paper_form",
                            evidence_ref="form 12")


def _actions(db: Session, prefix: str = "member_link.") -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)))


def test_paper_link_is_returned_once_and_stored_as_a_hash(client: TestClient, db: Session, member: Member,
                                                          officer: dict[str, str]) -> None:
    body = _create(client, officer, member.id)
    token = _token(body)
    assert str(body["url"]) == f"http://testserver/m/{token}"  # the address the request came to
    assert body["sent"] is False and body["channel"] == "paper"
    link = db.get(MemberLink, body["id"])
    assert link is not None
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert link.created_by_id is not None and link.revoked_at is None
    listed = client.get(f"/v1/members/{member.id}/links", headers=officer)
    assert listed.status_code == 200
    assert token not in listed.text and "url" not in listed.json()[0]


def test_sms_and_zalo_need_a_phone_and_consent(client: TestClient, db: Session, cipher: PiiCipher, tree: Tree,
                                              member: Member, officer: dict[str, str]) -> None:
    response = client.post(f"/v1/members/{member.id}/links", json={"channel": "sms"}, headers=officer)
    assert response.status_code == 409 and response.json()["code"] == "no_consent"
    _consent(db, member)
    assert _create(client, officer, member.id, "sms")["sent"] is True
    assert _create(client, officer, member.id, "zalo")["sent"] is True
    no_phone = make_member(db, cipher, tree.branch_a, phone=None)
    response = client.post(f"/v1/members/{no_phone.id}/links", json={"channel": "zalo"}, headers=officer)
    assert response.status_code == 409 and response.json()["code"] == "no_phone"
    response = client.post(f"/v1/members/{member.id}/links", json={"channel": "email"}, headers=officer)
    assert response.status_code == 422


def test_logging_messenger_logs_neither_phone_nor_token(client: TestClient, db: Session, member: Member,
                                                       officer: dict[str, str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    _consent(db, member)
    with caplog.at_level(logging.DEBUG):
        token = _token(_create(client, officer, member.id, "sms"))
    records = [r for r in caplog.records if r.name == "cardsvc.member_links"]
    assert len(records) == 1
    record = records[0]
    assert record.__dict__["member_id"] == member.id and record.__dict__["channel"] == "sms"
    assert record.__dict__["phone"] == "+84******678" == mask_phone("+84912345678") == member.phone_masked
    everything = caplog.text + repr([r.__dict__ for r in caplog.records])
    for secret in (token, PHONE, "+84912345678", "912345678"):
        assert secret not in everything


def test_sms_text_fits_one_gsm_segment() -> None:
    text = message_text("https://the.hoilhpn.org.vn/m/" + "A" * 32, "sms")
    assert text.isascii() and len(text) <= 160


def test_a_new_link_revokes_the_previous_one(client: TestClient, db: Session, member: Member,
                                              officer: dict[str, str]) -> None:
    first = _create(client, officer, member.id)
    second = _create(client, officer, member.id)
    assert client.get(f"/m/{_token(first)}/card.json").status_code == 404
    assert client.get(f"/m/{_token(second)}/card.json").status_code == 200
    created = [e for e in _actions(db) if e.action == "member_link.create"]
    assert [e.details["revoked"] for e in created] == [[], [first["id"]]]
    active = db.scalars(select(MemberLink).where(MemberLink.member_id == member.id,
                                                 MemberLink.revoked_at.is_(None))).all()
    assert [link.id for link in active] == [second["id"]]


def test_revoke_makes_page_and_json_404(client: TestClient, db: Session, member: Member,
                                        officer: dict[str, str]) -> None:
    body = _create(client, officer, member.id)
    token = _token(body)
    assert client.get(f"/m/{token}").status_code == 200
    response = client.post(f"/v1/members/{member.id}/links/revoke", headers=officer)
    assert response.status_code == 200 and response.json() == {"member_id": member.id, "revoked": [body["id"]]}
    gone = client.get(f"/m/{token}/card.json")
    assert gone.status_code == 404 and gone.json()["code"] == "link_not_found"
    page = client.get(f"/m/{token}")
    assert page.status_code == 404 and "không còn hiệu lực" in page.text and "no longer valid" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert client.get(f"/m/{token}/manifest.webmanifest").status_code == 404
    assert client.get(f"/m/{token}/sw.js").status_code == 404
    again = client.post(f"/v1/members/{member.id}/links/revoke", headers=officer)
    assert again.json()["revoked"] == []


def test_every_change_is_audited(client: TestClient, db: Session, member: Member, officer: dict[str, str]) -> None:
    _consent(db, member)
    token = _token(_create(client, officer, member.id, "zalo"))
    client.get(f"/m/{token}/card.json")
    client.get(f"/m/{token}")  # within the hour: no second use entry
    client.post(f"/v1/members/{member.id}/links/revoke", headers=officer)
    entries = _actions(db)
    assert [e.action for e in entries] == ["member_link.create", "member_link.send", "member_link.use",
                                           "member_link.revoke"]
    assert {e.actor_name for e in entries} == {"t.officer.a", "member-link"}
    assert all(e.chapter_path == member.chapter.path for e in entries)
    for entry in entries:
        assert token not in repr(entry.details) and "912345678" not in repr(entry.details)


def test_links_are_scoped_like_members(client: TestClient, member: Member) -> None:
    other_province = login(client, "t.officer.b")
    response = client.post(f"/v1/members/{member.id}/links", json={"channel": "paper"}, headers=other_province)
    assert response.status_code == 404
    viewer = login(client, "t.viewer.a")
    response = client.post(f"/v1/members/{member.id}/links", json={"channel": "paper"}, headers=viewer)
    assert response.status_code == 403
    assert client.post(f"/v1/members/{member.id}/links", json={"channel": "paper"}).status_code == 401


def test_tokens_are_random_and_unknown_ones_are_indistinguishable(client: TestClient, member: Member,
                                                                   officer: dict[str, str]) -> None:
    tokens = [_token(_create(client, officer, member.id)) for _ in range(20)]
    assert len(set(tokens)) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", token) for token in tokens)
    # 192 random bits: the tokens share no structure (no member id, number or counter in them).
    assert not any(member.member_number in token for token in tokens)
    assert len({token[:4] for token in tokens}) > 15
    revoked = client.get(f"/m/{tokens[0]}/card.json")
    for probe in ("A" * 32, tokens[-1][:-1] + ("A" if tokens[-1][-1] != "A" else "B"), member.member_number,
                  tokens[-1] + "x", str(member.id), "A" * 5000):
        response = client.get(f"/m/{probe}/card.json")
        assert response.status_code == 404
        assert response.json() == revoked.json()
    assert client.get("/m/..%2F..%2Fetc/card.json").status_code == 404


def test_card_json_follows_issue_reissue_suspension_and_revocation(
        client: TestClient, app: FastAPI, db: Session, member: Member, officer: dict[str, str],
        signing_keys: dict[str, SigningKey]) -> None:
    token = _token(_create(client, officer, member.id))

    def card() -> dict[str, object]:
        response = client.get(f"/m/{token}/card.json")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body: dict[str, object] = response.json()
        return body

    empty = card()
    assert empty["state"] == "no_card" and empty["qr_text"] is None and empty["card_id"] is None
    assert empty["full_name"] == "Nguyễn Thị Phương Thảo" and empty["chapter_name"] == "Chi hội 1"

    first = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    shown = card()
    assert shown["state"] == "active" and shown["card_id"] == first.card_id and shown["version"] == 1
    assert shown["qr_text"] == credential_qr_text(first.credential)
    assert str(shown["qr_svg"]).startswith("<svg") and shown["member_number"] == member.member_number
    assert shown["issued_on"] == first.issued_on.isoformat() and shown["expires_on"] == first.expires_on.isoformat()

    second = cards.renew_card(db, SYSTEM, app.state.keyring, first.card_id, validity_years=5, list_size=4096)
    shown = card()
    assert (shown["card_id"], shown["version"], shown["state"]) == (second.card_id, 2, "active")
    assert shown["qr_text"] == credential_qr_text(second.credential) != credential_qr_text(first.credential)

    cards.suspend_card(db, SYSTEM, second.card_id, note=None)
    assert card()["state"] == "suspended"
    cards.revoke_card(db, SYSTEM, second.card_id, reason="lost", note=None)
    shown = card()
    assert shown["state"] == "revoked" and shown["card_status"] == "revoked" and shown["card_id"] == second.card_id
    assert shown["qr_text"] is None and shown["qr_svg"] is None

    old = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, today=date(2015, 1, 1), validity_years=5,
                           list_size=4096)
    shown = card()
    assert (shown["state"], shown["card_id"], shown["expires_on"]) == ("expired", old.card_id, "2019-12-31")
    assert shown["qr_text"] is None


def test_no_id_number_birth_date_or_phone_in_page_or_json(
        client: TestClient, app: FastAPI, db: Session, cipher: PiiCipher, member: Member, officer: dict[str, str],
        signing_keys: dict[str, SigningKey]) -> None:
    cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    revealed = client.get(f"/v1/members/{member.id}?reveal=true", headers=login(client, "t.admin")).json()
    id_number = revealed["id_number"]
    assert re.fullmatch(r"\d{12}", id_number)
    token = _token(_create(client, officer, member.id))
    bodies = [client.get(f"/m/{token}").text, client.get(f"/m/{token}/card.json").text,
              client.get(f"/m/{token}/manifest.webmanifest").text]
    assert "Nguyễn Thị Phương Thảo" in bodies[0] and member.member_number in bodies[1]
    forbidden = [id_number, str(member.id_number_masked), "1987-09-21", "21/09/1987", PHONE, "+84912345678",
                 "912345678", "birth", "phone", "id_number"]
    for body in bodies:
        for value in forbidden:
            assert value not in body, value


def test_page_manifest_and_service_worker_headers(client: TestClient, member: Member,
                                                  officer: dict[str, str]) -> None:
    token = _token(_create(client, officer, member.id))
    page = client.get(f"/m/{token}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-store"
    assert f'href="/m/{token}/manifest.webmanifest"' in page.text and 'lang="vi"' in page.text
    # No inline script or style (the CSP would block them): only the JSON data block.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == ['<script type="application/json" id="card-data">']
    assert "style=" not in page.text
    manifest = client.get(f"/m/{token}/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == f"/m/{token}" and manifest.json()["scope"] == f"/m/{token}"
    for icon in manifest.json()["icons"]:
        assert client.get(icon["src"]).headers["content-type"] == "image/png"
    worker = client.get(f"/m/{token}/sw.js")
    assert worker.headers["service-worker-allowed"] == f"/m/{token}"
    assert worker.headers["content-type"].startswith("text/javascript")
    for asset in ("/static/member/card.js", "/static/member/card.css"):
        assert client.get(asset).status_code == 200
