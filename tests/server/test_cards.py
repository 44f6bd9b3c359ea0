"""Card lifecycle through the API: issue, supersede, suspend, reinstate, revoke, renew, renderings, batch jobs."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.models import AuditEntry, Card, Chapter, Member, SigningKey
from cardsvc.security import PiiCipher
from cardsvc.services import card_batches, cards, jobs
from cardsvc.services.context import Actor
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from tests.conftest import NAME_TOO_LONG_FOR_CARD, SYSTEM, Tree, _session_for, login, make_member
from verification.crypto import key_from_jwk, verify_signature
from verification.format import credential_from_text, parse_credential
from verification.status import STATUS_REVOKED, STATUS_SUPERSEDED, STATUS_SUSPENDED, STATUS_VALID, verify_status_list
from verification.trust import TrustAnchor, verify_trust_bundle

pytestmark = pytest.mark.usefixtures("signing_keys")


def _issue(client: TestClient, member_id: int, headers: dict[str, str]) -> dict[str, object]:
    response = client.post(f"/v1/members/{member_id}/cards", json={}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _verify_with_published_keys(client: TestClient, qr_text: str) -> None:
    """What a station does: trust only the published JWKS and the signed bundle."""
    anchor = TrustAnchor.from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json())
    bundle = verify_trust_bundle(client.get("/.well-known/cardsvc-trust-bundle").text, anchor,
                                 now=datetime.now(UTC))
    parsed = parse_credential(credential_from_text(qr_text))
    trusted = bundle.keys[parsed.kid]
    verify_signature(parsed, trusted.algorithm, trusted.key)
    jwks = {bytes.fromhex(k["kid"]): key_from_jwk(k) for k in client.get("/.well-known/jwks.json").json()["keys"]}
    _kid, algorithm, key = jwks[parsed.kid]
    verify_signature(parsed, algorithm, key)


def test_issue_card_and_verify_it_like_a_station(client: TestClient, tree: Tree, db: Session,
                                                 cipher: PiiCipher, settings: Settings) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo Vy")
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    assert card["version"] == 1
    assert card["status"] == "active"
    today = vietnam_today()
    assert card["expires_on"] == str(today.replace(year=today.year + 5) - timedelta(days=1))
    credential = client.get(f"/v1/cards/{card['card_id']}/credential", headers=headers).json()
    assert credential["qr_text"].startswith("8401") and credential["qr_text"].isdigit()
    assert credential["qr_version"] <= 9
    claims = parse_credential(bytes.fromhex(credential["credential_hex"])).claims
    assert claims.display_name == "Nguyễn Thị Phương Thảo Vy"
    assert claims.member_number == member.member_number
    assert claims.chapter_code == tree.branch_a.code
    # No ID number, birth date or phone anywhere in the credential.
    raw = bytes.fromhex(credential["credential_hex"])
    plain_id = cipher.decrypt("id_number", member.id_number_ciphertext or b"")
    for secret in (plain_id, cipher.decrypt("phone", member.phone_ciphertext or b""), member.birth_date.isoformat()):
        assert secret.encode() not in raw
    _verify_with_published_keys(client, credential["qr_text"])


def test_reissue_supersedes_and_the_status_list_says_so(client: TestClient, tree: Tree, db: Session,
                                                        cipher: PiiCipher, settings: Settings) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    first = _issue(client, member.id, headers)
    second = _issue(client, member.id, headers)
    assert second["version"] == 2
    history = client.get(f"/v1/members/{member.id}/cards", headers=headers).json()
    assert [(c["version"], c["status"]) for c in history] == [(1, "superseded"), (2, "active")]
    statuses = _published_statuses(client, [first, second])
    assert statuses == [STATUS_SUPERSEDED, STATUS_VALID]


def _published_statuses(client: TestClient, cards: list[dict[str, object]]) -> list[int]:
    anchor = TrustAnchor.from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json())
    bundle = verify_trust_bundle(client.get("/.well-known/cardsvc-trust-bundle").text, anchor,
                                 now=datetime.now(UTC))
    result = []
    for card in cards:
        list_id = int(str(card["status_list_id"]))
        uri = bundle.status_lists[list_id]
        response = client.get(f"/v1/status-lists/{list_id}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/statuslist+jwt")
        view = verify_status_list(response.text, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid,
                                  uri=uri, now=datetime.now(UTC))
        result.append(view.status(int(str(card["status_index"]))))
    return result


def test_suspend_reinstate_revoke(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    url = f"/v1/cards/{card['card_id']}"
    assert client.post(f"{url}/suspend", json={"note": "chờ xác minh"}, headers=headers).json()["status"] == \
        "suspended"
    assert _published_statuses(client, [card]) == [STATUS_SUSPENDED]
    assert client.post(f"{url}/reinstate", json={}, headers=headers).json()["status"] == "active"
    assert _published_statuses(client, [card]) == [STATUS_VALID]
    revoked = client.post(f"{url}/revoke", json={"reason": "lost"}, headers=headers)
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["status_reason"] == "lost"
    assert _published_statuses(client, [card]) == [STATUS_REVOKED]
    again = client.post(f"{url}/reinstate", json={}, headers=headers)
    assert again.status_code == 409
    actions = [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.target_type == "card")
                                            .order_by(AuditEntry.id))]
    assert actions == ["card.issue", "card.suspend", "card.reinstate", "card.revoke"]


def test_status_list_etag_and_cache_headers(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher,
                                            settings: Settings) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    url = f"/v1/status-lists/{card['status_list_id']}"
    first = client.get(url)
    assert first.headers["Cache-Control"] == f"public, max-age={settings.status_list_ttl_seconds}"
    etag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    client.post(f"/v1/cards/{card['card_id']}/revoke", json={"reason": "stolen"}, headers=headers)
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_member_status_drives_the_card(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    client.post(f"/v1/members/{member.id}/status", json={"status": "suspended", "reason": "nợ hội phí"},
                headers=headers)
    assert client.get(f"/v1/cards/{card['card_id']}", headers=headers).json()["status"] == "suspended"
    client.post(f"/v1/members/{member.id}/status", json={"status": "active"}, headers=headers)
    assert client.get(f"/v1/cards/{card['card_id']}", headers=headers).json()["status"] == "active"
    client.post(f"/v1/members/{member.id}/status", json={"status": "left", "reason": "chuyển đi"}, headers=headers)
    left = client.get(f"/v1/cards/{card['card_id']}", headers=headers).json()
    assert (left["status"], left["status_reason"]) == ("revoked", "left")
    refused = client.post(f"/v1/members/{member.id}/cards", json={}, headers=headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "member_not_active"


def test_renew_gives_a_new_version(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    renewed = client.post(f"/v1/cards/{card['card_id']}/renew", headers=headers)
    assert renewed.status_code == 201
    assert renewed.json()["version"] == 2
    assert client.get(f"/v1/cards/{card['card_id']}", headers=headers).json()["status"] == "superseded"


def test_renderings(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    import io

    import zxingcpp
    from PIL import Image

    member = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Ngọc Ánh")
    headers = login(client, "t.officer.a")
    card = _issue(client, member.id, headers)
    text = client.get(f"/v1/cards/{card['card_id']}/credential", headers=headers).json()["qr_text"]
    png = client.get(f"/v1/cards/{card['card_id']}/qr.png", headers=headers)
    assert png.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert [d.text for d in decoded] == [text]
    svg = client.get(f"/v1/cards/{card['card_id']}/qr.svg", headers=headers)
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text
    pdf = client.get(f"/v1/cards/{card['card_id']}/card.pdf", headers=headers)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_unknown_inactive_and_out_of_scope(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    headers = login(client, "t.officer.a")
    assert client.post("/v1/members/999999/cards", json={}, headers=headers).status_code == 404
    other = make_member(db, cipher, tree.branch_b)
    assert client.post(f"/v1/members/{other.id}/cards", json={}, headers=headers).status_code == 404
    assert client.get("/v1/cards/00112233445566778899", headers=headers).status_code == 404
    assert client.post(f"/v1/members/{other.id}/cards", json={"reason": "x"}, headers=headers).status_code == 422


def test_batch_issuance_is_idempotent_and_prints_sheets(client: TestClient, tree: Tree, db: Session,
                                                        cipher: PiiCipher) -> None:
    for n in range(3):
        make_member(db, cipher, tree.branch_a, full_name=f"Lê Thị {['Hoa', 'Mai', 'Lan'][n]}")
    make_member(db, cipher, tree.commune_a, full_name="Phạm Thị Hằng")
    headers = login(client, "t.officer.a")
    job = client.post(f"/v1/chapters/{tree.commune_a.id}/cards/batch", json={"subtree": True}, headers=headers)
    assert job.status_code == 202, job.text
    status = client.get(f"/v1/jobs/{job.json()['id']}", headers=headers).json()
    assert (status["status"], status["total"], status["done"]) == ("done", 4, 4)
    again = client.post(f"/v1/chapters/{tree.commune_a.id}/cards/batch", json={"subtree": True}, headers=headers)
    status = client.get(f"/v1/jobs/{again.json()['id']}", headers=headers).json()
    assert (status["status"], status["total"], status["done"]) == ("done", 0, 0)
    assert len(db.scalars(select(Card)).all()) == 4
    sheets = client.get(f"/v1/jobs/{job.json()['id']}/sheets.pdf", headers=headers)
    assert sheets.status_code == 200 and sheets.content.startswith(b"%PDF")
    assert client.get(f"/v1/jobs/{job.json()['id']}", headers=login(client, "t.officer.b")).status_code == 404


def _store_legacy_name(db: Session, member: Member, name: str) -> None:
    """A name stored before today's rules (or behind the service's back): no entry point accepts it any more."""
    db.execute(update(Member).where(Member.id == member.id).values(full_name=name))
    db.expire_all()


def test_a_stored_name_the_card_cannot_carry_is_409_not_500(client: TestClient, tree: Tree, db: Session,
                                                            cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    _store_legacy_name(db, member, NAME_TOO_LONG_FOR_CARD)
    response = client.post(f"/v1/members/{member.id}/cards", json={}, headers=login(client, "t.officer.a"))
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "card_data_invalid"
    [detail] = response.json()["details"]
    assert (detail["field"], detail["code"]) == ("full_name", "too_long")
    assert "Họ tên quá dài" in detail["message_vi"]
    assert db.scalars(select(Card).where(Card.member_id == member.id)).all() == []


def test_a_stored_chapter_code_the_card_cannot_carry_is_409(client: TestClient, tree: Tree, db: Session,
                                                            cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    db.execute(update(Chapter).where(Chapter.id == tree.branch_a.id).values(code="t-hni bd\u202e01"))
    db.expire_all()
    response = client.post(f"/v1/members/{member.id}/cards", json={}, headers=login(client, "t.officer.a"))
    assert response.status_code == 409, response.text
    [detail] = response.json()["details"]
    assert (detail["field"], detail["code"]) == ("chapter_code", "invalid_chapter_code")
    assert "Mã chi hội" in detail["message_vi"]


def test_a_batch_records_the_members_it_cannot_issue_and_goes_on(client: TestClient, tree: Tree, db: Session,
                                                                 cipher: PiiCipher) -> None:
    good = make_member(db, cipher, tree.branch_a, full_name="Lê Thị Hoa")
    too_long = make_member(db, cipher, tree.branch_a, full_name="Lê Thị Mai")
    spoofing = make_member(db, cipher, tree.commune_a, full_name="Lê Thị Lan")
    _store_legacy_name(db, too_long, NAME_TOO_LONG_FOR_CARD)
    _store_legacy_name(db, spoofing, "Lê Thị \u202enaL")
    headers = login(client, "t.officer.a")
    started = client.post(f"/v1/chapters/{tree.commune_a.id}/cards/batch", json={"subtree": True}, headers=headers)
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("done", 3, 1, 2)
    failures = {f["member_number"]: f for f in job["failures"]}
    assert failures.keys() == {too_long.member_number, spoofing.member_number}
    assert failures[too_long.member_number]["code"] == "too_long"
    assert "Họ tên quá dài" in failures[too_long.member_number]["message_vi"]
    assert failures[spoofing.member_number]["code"] == "invisible_characters"
    assert "U+202E" in failures[spoofing.member_number]["message"]
    assert [c.member_id for c in db.scalars(select(Card))] == [good.id]
    done = db.scalars(select(AuditEntry).where(AuditEntry.action == "card.batch_done")).one()
    assert done.details == {"issued": 1, "failed": 2}

    # Corrected, she gets her card from the next batch; the other is recorded again.
    fixed = client.patch(f"/v1/members/{too_long.id}", json={"full_name": "Tôn Nữ Hoàng Phương Thảo"},
                         headers=headers)
    assert fixed.status_code == 200, fixed.text
    again = client.post(f"/v1/chapters/{tree.commune_a.id}/cards/batch", json={"subtree": True}, headers=headers)
    job = client.get(f"/v1/jobs/{again.json()['id']}", headers=headers).json()
    assert (job["status"], job["done"], job["failed"]) == ("done", 1, 1)
    assert [f["member_id"] for f in job["failures"]] == [spoofing.id]


def test_a_card_issued_meanwhile_is_recorded_and_rolled_back_alone(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_member(db, cipher, tree.branch_a, full_name="Lê Thị Hoa")
    raced = make_member(db, cipher, tree.branch_a, full_name="Lê Thị Mai")

    def racing(session: Session, actor: Actor, keyring: KeyRing, member: Member, **kwargs: Any) -> Card:
        card = cards.issue_in_transaction(session, actor, keyring, member, **kwargs)
        if member.id == raced.id:  # What the one-current-card index says when an officer was quicker.
            raise IntegrityError("INSERT INTO cards", {}, Exception("uq_cards_current"))
        return card

    def refused(session: Session, table: Any, rows: Any) -> None:
        if table.name == "cards":  # The bulk insert meets the officer's card: the whole chunk is refused.
            raise IntegrityError("COPY cards", {}, Exception("uq_cards_current"))
        bulk_insert(session, table, rows)

    bulk_insert = card_batches.insert_rows
    monkeypatch.setattr(card_batches, "insert_rows", refused)
    # The refused chunk is issued again member by member, where the officer's card refuses hers alone.
    monkeypatch.setattr(card_batches, "issue_in_transaction", racing)
    headers = login(client, "t.officer.a")
    started = client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={}, headers=headers)
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert (job["status"], job["done"], job["failed"]) == ("done", 1, 1)
    assert job["failures"][0]["code"] == "concurrent_issue"
    assert [c.member_id for c in db.scalars(select(Card))] == [first.id]
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "card.issue")).one().details["member_id"] == \
        first.id


def test_a_batch_job_always_ends(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_member(db, cipher, tree.branch_a)

    def broken(*_args: object, **_kwargs: object) -> bytes:
        raise ValueError("display name must be 1 to 100 bytes of UTF-8")

    monkeypatch.setattr(card_batches, "sign_credential", broken)
    headers = login(client, "t.officer.a")
    started = client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={}, headers=headers)
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert job["status"] == "failed"
    assert job["error"] == "an error stopped the job (ValueError); start the batch again"


def test_a_batch_stopped_by_the_server_fails_saying_so_and_resumes(db: Session, tree: Tree, cipher: PiiCipher,
                                                                   settings: Settings,
                                                                   signing_keys: dict[str, SigningKey]) -> None:
    for given in ("Hoa", "Mai"):
        make_member(db, cipher, tree.branch_a, full_name=f"Lê Thị {given}")
    keyring, factory = KeyRing(settings.kek), (lambda: _session_for(db.connection()))
    issue = {"validity_years": 5, "list_size": 4096}
    stopping = threading.Event()
    stopping.set()  # SIGTERM came before the first chunk.
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    jobs.run_batch(factory, keyring, job.id, stopping=stopping, **issue)
    db.refresh(job)
    assert (job.status, job.done, job.error) == ("failed", 0, jobs.STOPPED_MESSAGE)
    again = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    jobs.run_batch(factory, keyring, again.id, **issue)
    db.refresh(again)
    assert (again.status, again.done) == ("done", 2)


def test_compromised_key_revokes_its_cards(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher,
                                           signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a)
    officer = login(client, "t.officer.a")
    card = _issue(client, member.id, officer)
    admin = login(client, "t.admin")
    assert client.post("/v1/keys/rotate", json={}, headers=admin).status_code == 201
    old_kid = signing_keys["card"].kid
    jwks_kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid in jwks_kids and len(jwks_kids) == 2  # the retired key still verifies
    result = client.post(f"/v1/keys/{old_kid}/retire", json={"compromised": True}, headers=admin)
    assert result.status_code == 200, result.text
    assert result.json()["cards_revoked"] == 1
    assert result.json()["reissue"][0]["card_id"] == card["card_id"]
    assert old_kid not in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    anchor = TrustAnchor.from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json())
    bundle = verify_trust_bundle(client.get("/.well-known/cardsvc-trust-bundle").text, anchor,
                                 now=datetime.now(UTC))
    assert bundle.keys[bytes.fromhex(old_kid)].status == "compromised"
    assert _published_statuses(client, [card]) == [STATUS_REVOKED]
    reissued = _issue(client, member.id, officer)
    assert reissued["kid"] != old_kid


def test_keys_are_encrypted_at_rest(db: Session, signing_keys: dict[str, SigningKey]) -> None:
    for key in signing_keys.values():
        assert key.private_key_encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
