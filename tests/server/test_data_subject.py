"""Data-subject requests: export (JSON and PDF, needs pii, audited) and erasure (former members only, idempotent)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pypdfium2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, BindingCode, Card, Checkin, Consent, Member, MembershipPublication, SigningKey
from cardsvc.security import PiiCipher
from cardsvc.services import bindings, cards, consents, events, members, stations
from issuance.credential import credential_qr_text
from tests.conftest import SYSTEM, Tree, login, make_member


def _member_with_history(db: Session, cipher: PiiCipher, app: FastAPI, tree: Tree, client: TestClient
                         ) -> tuple[Member, Card]:
    member = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Phương Thảo", phone="0987654321",
                         birth_date=date(1979, 11, 23))
    consents.record_consent(db, SYSTEM, member.id, purpose="identity_verification", method="paper_form",
                            evidence_ref="PHIEU-12")
    card = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    now = datetime.now(UTC)
    spec = events.EventSpec(chapter_id=tree.commune_a.id, title="Họp chi hội", venue="", starts_at=now,
                            ends_at=now + timedelta(hours=2))
    event = events.create_event(db, SYSTEM, spec)
    code = stations.register_station(db, SYSTEM, event.id, "Cửa chính").provisioning_code
    token = client.post("/v1/devices/provision", json={"code": code}).json()["device_token"]
    scanned = client.post(f"/v1/events/{event.id}/checkins", headers={"Authorization": f"Bearer {token}"},
                          json={"source": "qr_scanner", "client_nonce": "nonce-export-1",
                                "payload": credential_qr_text(card.credential)})
    assert scanned.json()["result"] == "ok"
    return member, card


def test_export_holds_everything_and_is_audited(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    member, card = _member_with_history(db, cipher, app, tree, client)
    response = client.get(f"/v1/members/{member.id}/export", headers=login(client, "t.officer.a.pii"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    export = response.json()
    id_number = cipher.decrypt("id_number", member.id_number_ciphertext)  # type: ignore[arg-type]
    assert export["member"]["id_number"] == id_number
    assert export["member"]["full_name"] == "Trần Thị Phương Thảo"
    assert export["member"]["phone"] == "+84987654321"
    assert export["member"]["birth_date"] == "1979-11-23"
    assert [c["purpose"] for c in export["consents"]] == ["identity_verification"]
    assert [c["card_id"] for c in export["cards"]] == [card.card_id]
    assert "credential" not in export["cards"][0]
    assert [(c["event_title"], c["result"], c["station"]) for c in export["checkins"]] == [
        ("Họp chi hội", "ok", "Cửa chính")]
    assert export["status_history"][0]["to_status"] == "active"
    actions = {entry["action"] for entry in export["audit_entries"]}
    assert {"member.create", "consent.record", "card.issue"} <= actions
    assert export["identity_checks"] == [] and export["identity_reviews"] == [] and export["member_links"] == []
    audited = db.scalars(select(AuditEntry).where(AuditEntry.action == "member.export",
                                                  AuditEntry.target_id == str(member.id))).all()
    assert [entry.details for entry in audited] == [{"format": "json"}]


def test_export_needs_the_pii_permission(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    refused = client.get(f"/v1/members/{member.id}/export", headers=login(client, "t.officer.a"))
    assert refused.status_code == 403
    assert refused.json()["code"] == "pii_permission_required"
    hidden = client.get(f"/v1/members/{member.id}/export", headers=login(client, "t.officer.b"))
    assert hidden.status_code == 404


def test_export_pdf_keeps_vietnamese(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
                                     signing_keys: dict[str, SigningKey]) -> None:
    member, _card = _member_with_history(db, cipher, app, tree, client)
    response = client.get(f"/v1/members/{member.id}/export?format=pdf", headers=login(client, "t.admin"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    pdf = pypdfium2.PdfDocument(response.content)
    text = "".join(pdf[index].get_textpage().get_text_range() for index in range(len(pdf)))
    assert "Trần Thị Phương Thảo" in text
    assert "Họp chi hội" in text
    assert "Đồng ý / Consents" in text


def test_erase_refuses_active_members(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    refused = client.post(f"/v1/members/{member.id}/erase", headers=login(client, "t.officer.a"))
    assert refused.status_code == 409
    assert refused.json()["code"] == "member_active"
    viewer = client.post(f"/v1/members/{member.id}/erase", headers=login(client, "t.viewer.a"))
    assert viewer.status_code == 403


def test_erase_removes_personal_data_and_keeps_attendance(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                          cipher: PiiCipher,
                                                          signing_keys: dict[str, SigningKey]) -> None:
    member, card = _member_with_history(db, cipher, app, tree, client)
    id_index = member.id_number_index
    bindings.create_code(db, SYSTEM, member.id)
    members.change_status(db, SYSTEM, member.id, status="deceased", reason="mất ngày 1/9", effective_on=None)
    # A card issued while she was recorded as left would still be current: erasure revokes it too.
    headers = login(client, "t.officer.a")
    response = client.post(f"/v1/members/{member.id}/erase", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["already_erased"] is False
    assert response.json()["consents_withdrawn"] == 1
    db.expire_all()
    erased = db.get(Member, member.id)
    assert erased is not None
    assert erased.full_name == f"Đã xoá #{member.id}"
    assert (erased.birth_date, erased.birth_date_precision) == (date(1979, 1, 1), "year")
    assert erased.phone_ciphertext is None and erased.phone_index is None and erased.phone_masked is None
    assert erased.status_reason is None
    assert erased.id_number_ciphertext is None and erased.id_number_index is None and erased.id_number_masked is None
    assert db.scalar(select(Member).where(Member.id_number_index == id_index)) is None
    stored = db.scalar(select(Card).where(Card.card_id == card.card_id))
    assert stored is not None and stored.status == "revoked" and stored.credential == b""
    assert all(c.withdrawn_at is not None for c in db.scalars(select(Consent).where(Consent.member_id == member.id)))
    assert db.scalars(select(Checkin).where(Checkin.member_id == member.id)).all()  # attendance stays, anonymous
    (burned,) = db.scalars(select(BindingCode.used_at).where(BindingCode.member_id == member.id))
    assert burned is not None  # her unused live-card activation code
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "member.erase",
                                              AuditEntry.target_id == str(member.id))) is not None
    again = client.post(f"/v1/members/{member.id}/erase", headers=headers)
    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert len(db.scalars(select(AuditEntry).where(AuditEntry.action == "member.erase",
                                                   AuditEntry.target_id == str(member.id))).all()) == 1
    # The card renderings of an erased card still answer (an empty credential), never a 500.
    admin = login(client, "t.admin")
    assert client.get(f"/v1/cards/{card.card_id}/qr.png", headers=admin).status_code == 200
    assert client.get(f"/v1/members/{member.id}/export", headers=admin).json()["member"]["id_number"] is None


def test_erase_waits_for_the_registry_withdrawal(client: TestClient, db: Session, tree: Tree,
                                                 cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    db.add(MembershipPublication(member_id=member.id, fact_digest="0" * 64))
    db.flush()
    members.change_status(db, SYSTEM, member.id, status="left", reason="chuyển đi", effective_on=None)
    refused = client.post(f"/v1/members/{member.id}/erase", headers=login(client, "t.admin"))
    assert refused.status_code == 409
    assert refused.json()["code"] == "registry_publication_active"
