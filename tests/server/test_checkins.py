"""Check-in through the API: every reason code, event rules, entry sequences, nonces, devices, manual check-in,
bad input, and what the checkins table keeps (reasons and payload hashes, never the payload)."""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.models import (
    CONFIG_COUNTER,
    AuditEntry,
    Card,
    Chapter,
    Checkin,
    Counter,
    Event,
    Member,
    SigningKey,
    Station,
)
from cardsvc.security import PiiCipher
from cardsvc.services import cards, events, stations
from cardsvc.services.printing import credential_of
from issuance.credential import sign_credential
from issuance.keys import LocalSigner, generate_private_key
from tests.conftest import SYSTEM, Tree, login, make_member
from verification.format import ALG_EDDSA, credential_from_text, parse_credential, to_qr_text
from verification.ndef import encode_card_ndef, encode_ndef_tlv

pytestmark = pytest.mark.usefixtures("signing_keys")

_nonces = itertools.count(1)


def nonce() -> str:
    return f"nonce-{next(_nonces):08d}"


@dataclass
class Door:
    """A provisioned station of one event and the headers its device sends."""

    event: Event
    station_id: int
    headers: dict[str, str]


def make_event(db: Session, chapter_id: int, **rules: Any) -> Event:
    now = datetime.now(UTC)
    spec: dict[str, Any] = {"chapter_id": chapter_id, "title": "Sinh hoạt chi hội", "venue": "Nhà văn hóa",
                            "starts_at": now, "ends_at": now + timedelta(hours=3)}
    spec.update(rules)
    return events.create_event(db, SYSTEM, events.EventSpec(**spec))


def make_door(client: TestClient, db: Session, event: Event, name: str = "Cửa 1") -> Door:
    registration = stations.register_station(db, SYSTEM, event.id, name)
    response = client.post("/v1/devices/provision", json={"code": registration.provisioning_code})
    assert response.status_code == 200, response.text
    return Door(event, registration.station.id, {"Authorization": f"Bearer {response.json()['device_token']}"})


def issue(app: FastAPI, db: Session, member: Member, *, today: date | None = None) -> tuple[Card, str]:
    # Dated the day before unless told: a scan claimed minutes or hours ago then falls within the card's validity
    # at any time of day, also just after midnight in Vietnam.
    day = today or vietnam_today() - timedelta(days=1)
    card = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096, today=day)
    return card, credential_of(card).qr_text


def scan(client: TestClient, door: Door, payload: str | None = None, *, nonce_: str | None = None,
         **fields: Any) -> Any:
    body: dict[str, Any] = {"source": "qr_scanner", "client_nonce": nonce_ or nonce(), **fields}
    if payload is not None:
        body["payload"] = payload
    return client.post(f"/v1/events/{door.event.id}/checkins", json=body, headers=door.headers)


def verdict(response: Any) -> tuple[str, str | None]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["result"], body["reason"]


def count(db: Session, model: type[Any], *where: Any) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def unknown_signer() -> LocalSigner:
    """A key the service has never seen (its kid is unknown to the server)."""
    return LocalSigner(b"\xfe\xed", ALG_EDDSA, generate_private_key("ed25519"))


@pytest.fixture
def door(client: TestClient, db: Session, tree: Tree) -> Door:
    return make_door(client, db, make_event(db, tree.commune_a.id))


# --- the accepted path ---------------------------------------------------------------------------------------------

def test_provisioning_answer_names_the_station(client: TestClient, db: Session, tree: Tree) -> None:
    event = make_event(db, tree.commune_a.id)
    registration = stations.register_station(db, SYSTEM, event.id, "Cửa  chính ")
    answer = client.post("/v1/devices/provision", json={"code": registration.provisioning_code}).json()
    # The check-in page shows it in its header: the name the officer gave the station, not its number.
    assert (answer["station_id"], answer["event_id"], answer["station_name"]) == (
        registration.station.id, event.id, "Cửa chính")



def test_ok_shows_the_steward_who_it_is_and_a_second_scan_is_already_checked_in(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher, door: Door) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Hoa")
    _card, qr = issue(app, db, member)
    first = scan(client, door, f"]Q1{qr}\r\n")  # A keyboard-wedge scanner's AIM prefix and line end.
    assert verdict(first) == ("ok", None)
    body = first.json()
    assert body["member"] == {"id": member.id, "full_name": "Trần Thị Hoa", "member_number": member.member_number,
                              "chapter": {"id": tree.branch_a.id, "code": tree.branch_a.code,
                                          "name": tree.branch_a.name},
                              "photo_url": None}
    assert body["direction"] == "in" and body["replayed"] is False and body["first_checkin"] is None

    second_door = make_door(client, db, door.event, "Cửa 2")
    again = scan(client, second_door, qr)
    assert verdict(again) == ("error", "already_checked_in")
    first_entry = again.json()["first_checkin"]
    assert first_entry["station_id"] == door.station_id and first_entry["station_name"] == "Cửa 1"
    assert datetime.fromisoformat(first_entry["at"]) == datetime.fromisoformat(body["received_at"])
    assert again.json()["member"]["id"] == member.id
    assert count(db, Checkin, Checkin.event_id == door.event.id, Checkin.result == "ok") == 1
    assert count(db, Checkin, Checkin.event_id == door.event.id) == 2


def test_nfc_payload_base64_and_officer_scans(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                              cipher: PiiCipher, door: Door) -> None:
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    nfc = scan(client, door, source="nfc", payload_base64=base64.b64encode(card.credential).decode())
    assert verdict(nfc) == ("ok", None)
    _card2, qr2 = issue(app, db, make_member(db, cipher, tree.branch_a))
    officer = client.post(f"/v1/events/{door.event.id}/checkins", headers=login(client, "t.officer.a"),
                          json={"source": "qr_camera", "client_nonce": nonce(), "payload": qr2})
    assert verdict(officer) == ("ok", None)
    row = db.get(Checkin, officer.json()["checkin_id"])
    assert row is not None and row.officer_id == tree.officers["t.officer.a"].id and row.station_id is None
    not_base64 = scan(client, door, source="nfc", payload_base64="***")
    assert not_base64.status_code == 422 and not_base64.json()["code"] == "validation_failed"
    both = scan(client, door, "8401", payload_base64="AAAA")
    assert both.status_code == 422
    neither = scan(client, door)
    assert neither.status_code == 422



def test_payload_base64_is_the_raw_credential_in_standard_base64(client: TestClient, app: FastAPI, db: Session,
                                                                 tree: Tree, cipher: PiiCipher, door: Door) -> None:
    """docs/card-format.md §3a: the card record's payload, not the NDEF message or the tag's TLV, in RFC 4648 §4."""
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    message = encode_card_ndef(card.credential)
    for wrapped in (message, encode_ndef_tlv(message)):
        sent = scan(client, door, source="nfc", payload_base64=base64.b64encode(wrapped).decode())
        assert verdict(sent) == ("error", "malformed")
    standard = base64.b64encode(card.credential).decode()
    # base64url ("----" is b"\xfb\xef\xbe", "++++" in the standard alphabet), missing padding, a line break: 422.
    for variant in ("----", "AA", standard[:40] + "\n" + standard[40:]):
        assert scan(client, door, source="nfc", payload_base64=variant).status_code == 422, variant
    assert verdict(scan(client, door, source="nfc", payload_base64=standard)) == ("ok", None)

# --- every verification reason ---------------------------------------------------------------------------------------

def test_text_reasons_malformed_and_unsupported_version(client: TestClient, door: Door) -> None:
    for garbage in ("hello", "8401", "8401123", "", "   ", "84011234567890123456789", "8401\u00a0٣"):
        assert verdict(scan(client, door, garbage)) == ("error", "malformed"), garbage
    assert verdict(scan(client, door, "8403" + "0" * 17)) == ("error", "unsupported_version")
    # A lone surrogate is not text at all: the schema refuses it (422), it never reaches the decision path.
    surrogate = client.post(f"/v1/events/{door.event.id}/checkins", headers={**door.headers,
                            "Content-Type": "application/json"},
                            content=b'{"source": "qr_scanner", "client_nonce": "surrogate-1", "payload": "\\ud800"}')
    assert surrogate.status_code == 422 and surrogate.json()["code"] == "validation_failed"
    assert verdict(scan(client, door, source="nfc", payload_base64=base64.b64encode(b"\x00" * 40).decode())) == (
        "error", "malformed")


def test_unknown_key_and_bad_signature(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                       cipher: PiiCipher, door: Door, signing_keys: dict[str, SigningKey]) -> None:
    card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    claims = parse_credential(card.credential).claims
    foreign = sign_credential(claims, unknown_signer())
    assert verdict(scan(client, door, to_qr_text(foreign))) == ("error", "unknown_key")
    # The same claims under our key id but signed by another key; and our own credential with one bit flipped.
    impostor = LocalSigner(bytes.fromhex(signing_keys["card"].kid), ALG_EDDSA, generate_private_key("ed25519"))
    assert verdict(scan(client, door, to_qr_text(sign_credential(claims, impostor)))) == ("error", "bad_signature")
    raw = bytearray(credential_from_text(qr))
    raw[-1] ^= 0x01
    denied = scan(client, door, to_qr_text(bytes(raw)))
    assert verdict(denied) == ("error", "bad_signature")
    assert denied.json()["member"] is None  # Nothing unverified is shown.


def test_dates_not_yet_valid_and_expired(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                         cipher: PiiCipher, door: Door) -> None:
    future_member = make_member(db, cipher, tree.branch_a)
    _future, future_qr = issue(app, db, future_member, today=vietnam_today() + timedelta(days=3))
    assert verdict(scan(client, door, future_qr)) == ("error", "not_yet_valid")
    expired_member = make_member(db, cipher, tree.branch_a)
    _old, old_qr = issue(app, db, expired_member, today=vietnam_today() - timedelta(days=5 * 366 + 2))
    denied = scan(client, door, old_qr)
    assert verdict(denied) == ("error", "expired")
    assert denied.json()["member"]["id"] == expired_member.id  # The signature verified: the steward sees who it is.


def test_card_status_revoked_suspended_superseded(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                  cipher: PiiCipher, door: Door) -> None:
    headers = login(client, "t.officer.a")
    results = {}
    for action, body in (("revoke", {"reason": "lost"}), ("suspend", {}), ("renew", None)):
        card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
        response = client.post(f"/v1/cards/{card.card_id}/{action}", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        results[action] = verdict(scan(client, door, qr))[1]
    assert results == {"revoke": "revoked", "suspend": "suspended", "renew": "superseded"}


def test_compromised_key_gives_key_retired(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                           cipher: PiiCipher, door: Door, signing_keys: dict[str, SigningKey]) -> None:
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    kid = signing_keys["card"].kid
    response = client.post(f"/v1/keys/{kid}/retire", json={"compromised": True}, headers=login(client, "t.admin"))
    assert response.status_code == 200 and response.json()["cards_revoked"] == 1
    # The card is revoked too, but the key is checked first (card-format §6): the reason names the key.
    denied = scan(client, door, qr)
    assert verdict(denied) == ("error", "key_retired")
    assert denied.json()["member"] is None


def test_key_compromised_after_a_scan_is_refused_at_the_next(client: TestClient, app: FastAPI, db: Session,
                                                              tree: Tree, cipher: PiiCipher, door: Door,
                                                              signing_keys: dict[str, SigningKey]) -> None:
    # The first scan fills the worker's key cache (TrustCache); the database moves the configuration generation when
    # the key changes, and the very next scan rebuilds the keys instead of trusting the cached ones.
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    _card2, qr2 = issue(app, db, make_member(db, cipher, tree.branch_a))
    assert verdict(scan(client, door, qr)) == ("ok", None)
    response = client.post(f"/v1/keys/{signing_keys['card'].kid}/retire", json={"compromised": True},
                           headers=login(client, "t.admin"))
    assert response.status_code == 200, response.text
    assert verdict(scan(client, door, qr2)) == ("error", "key_retired")


def test_configuration_generation_moves_with_what_check_in_decides_with(db: Session, tree: Tree,
                                                                        signing_keys: dict[str, SigningKey]) -> None:
    """Triggers (migration 0007) bump the counter for stations' status, tokens and event, events, chapter paths and
    signing keys; a station's last_seen_at, written by check-ins themselves, leaves it alone."""
    def generation() -> int:
        value = db.scalar(select(Counter.value).where(Counter.name == CONFIG_COUNTER))
        assert value is not None
        return value

    event = make_event(db, tree.commune_a.id)
    station = stations.register_station(db, SYSTEM, event.id, "Cửa 1").station
    changes: list[tuple[str, Any]] = [
        ("station status", update(Station).where(Station.id == station.id).values(status="revoked")),
        ("event", update(Event).where(Event.id == event.id).values(title="Đại hội (dời lịch)")),
        ("chapter path", update(Chapter).where(Chapter.id == tree.branch_a.id).values(path=tree.branch_a.path)),
        ("signing key", update(SigningKey).where(SigningKey.id == signing_keys["card"].id).values(status="retired")),
    ]
    for what, statement in changes:
        before = generation()
        db.execute(statement)
        assert generation() > before, what
    before = generation()
    db.execute(update(Station).where(Station.id == station.id).values(last_seen_at=datetime.now(UTC)))
    db.execute(update(Chapter).where(Chapter.id == tree.branch_a.id).values(name="Chi hội 1"))
    assert generation() == before


def test_retired_key_keeps_verifying(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
                                     door: Door) -> None:
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    rotated = client.post("/v1/keys/rotate", json={"purpose": "card"}, headers=login(client, "t.admin"))
    assert rotated.status_code == 201, rotated.text
    assert verdict(scan(client, door, qr)) == ("ok", None)


def test_signed_by_us_but_unknown_card_is_refused(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                  cipher: PiiCipher, door: Door) -> None:
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    claims = parse_credential(card.credential).claims
    _key, signer = app.state.keyring.active_signer(db, "card")
    forged = sign_credential(claims.__class__(**{**claims.__dict__, "card_id": b"\x01" * 8}), signer)
    # Signed with our key yet unknown to the database (a leaked key, or a restored backup): refused, never trusted.
    assert verdict(scan(client, door, to_qr_text(forged))) == ("error", "revoked")


# --- event rules -----------------------------------------------------------------------------------------------------

def test_eligibility_subtree(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id))
    _inside, inside_qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    _sibling, sibling_qr = issue(app, db, make_member(db, cipher, tree.commune_a2))
    _parent, parent_qr = issue(app, db, make_member(db, cipher, tree.prov_a))
    assert verdict(scan(client, door, inside_qr)) == ("ok", None)
    assert verdict(scan(client, door, sibling_qr)) == ("error", "not_eligible")
    assert verdict(scan(client, door, parent_qr)) == ("error", "not_eligible")


def test_eligibility_invite_list(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                 cipher: PiiCipher) -> None:
    event = make_event(db, tree.prov_a.id, eligibility="invite")
    door = make_door(client, db, event)
    guest, outsider = make_member(db, cipher, tree.branch_a), make_member(db, cipher, tree.branch_a)
    _g, guest_qr = issue(app, db, guest)
    _o, outsider_qr = issue(app, db, outsider)
    invited = client.post(f"/v1/events/{event.id}/invites", json={"member_ids": [guest.id]},
                          headers=login(client, "t.officer.a"))
    assert invited.status_code == 200, invited.text
    assert verdict(scan(client, door, outsider_qr)) == ("error", "not_eligible")
    assert verdict(scan(client, door, guest_qr)) == ("ok", None)


def test_eligibility_all_members(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                 cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id, eligibility="all")
    door = make_door(client, db, event)
    _far, far_qr = issue(app, db, make_member(db, cipher, tree.branch_b))
    assert verdict(scan(client, door, far_qr)) == ("ok", None)
    # Only active members: a suspended member (checked in by hand, her card being suspended with her) is refused.
    suspended = make_member(db, cipher, tree.branch_b)
    db.execute(update(Member).where(Member.id == suspended.id).values(status="suspended"))
    db.expire_all()
    manual = client.post(f"/v1/events/{event.id}/checkins", headers=login(client, "t.admin"), json={
        "source": "manual", "client_nonce": nonce(), "member_id": suspended.id, "manual_reason": "quên thẻ"})
    assert verdict(manual) == ("error", "not_eligible")


def test_outside_window_and_scan_time(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                      cipher: PiiCipher) -> None:
    now = datetime.now(UTC)
    tomorrow = now + timedelta(days=1)
    later = make_event(db, tree.commune_a.id, starts_at=tomorrow, ends_at=tomorrow + timedelta(hours=2))
    door = make_door(client, db, later)
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    assert verdict(scan(client, door, qr)) == ("error", "outside_window")

    # An offline station's scan time decides when it is plausible: scanned during the window, synced after it.
    past = make_event(db, tree.commune_a.id, starts_at=now - timedelta(hours=5), ends_at=now - timedelta(hours=1))
    past_door = make_door(client, db, past)
    during = (now - timedelta(hours=2)).isoformat()
    assert verdict(scan(client, past_door, qr, scanned_at=during)) == ("ok", None)
    _card2, qr2 = issue(app, db, make_member(db, cipher, tree.branch_a))
    assert verdict(scan(client, past_door, qr2)) == ("error", "outside_window")
    # A claimed scan time outside what a station can plausibly hold is ignored: the server's clock decides.
    _card3, qr3 = issue(app, db, make_member(db, cipher, tree.branch_a))
    forged = (now - timedelta(days=30)).isoformat()
    assert verdict(scan(client, past_door, qr3, scanned_at=forged)) == ("error", "outside_window")
    naive = scan(client, past_door, qr3, scanned_at="2025-01-01T10:00:00")
    assert naive.status_code == 422


def test_closed_event(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
                      door: Door) -> None:
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    closed = client.post(f"/v1/events/{door.event.id}/close", headers=login(client, "t.officer.a"))
    assert closed.status_code == 200, closed.text
    assert verdict(scan(client, door, qr)) == ("error", "event_closed")
    assert count(db, Checkin, Checkin.event_id == door.event.id, Checkin.result == "ok") == 0


@pytest.mark.parametrize(("mode", "reentry", "expected"), [
    ("entry", False, [("ok", "in"), ("already_checked_in", None), ("already_checked_in", None)]),
    ("entry", True, [("ok", "in"), ("ok", "in"), ("ok", "in")]),
    ("entry_exit", False, [("ok", "in"), ("ok", "out"), ("already_checked_in", None), ("already_checked_in", None)]),
    ("entry_exit", True, [("ok", "in"), ("ok", "out"), ("ok", "in"), ("ok", "out")]),
])
def test_entry_sequences(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
                         mode: str, reentry: bool, expected: list[tuple[str, str | None]]) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id, mode=mode, allow_reentry=reentry))
    member = make_member(db, cipher, tree.branch_a)
    _card, qr = issue(app, db, member)
    seen = []
    for _ in expected:
        body = scan(client, door, qr).json()
        seen.append(("ok", body["direction"]) if body["result"] == "ok" else (body["reason"], None))
    assert seen == expected
    ok_rows = db.execute(select(Checkin.seq, Checkin.direction).where(
        Checkin.event_id == door.event.id, Checkin.member_id == member.id, Checkin.result == "ok",
    ).order_by(Checkin.seq)).all()
    assert [tuple(r) for r in ok_rows] == [(i + 1, d) for i, (_r, d) in enumerate(e for e in expected if e[0] == "ok")]


# --- nonces: retries are answered, never recorded twice ------------------------------------------------------------

def test_nonce_replay_returns_the_same_answer_and_writes_nothing(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher, door: Door) -> None:
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    first = scan(client, door, qr, nonce_="retry-0001")
    rows = count(db, Checkin)
    again = scan(client, door, qr, nonce_="retry-0001")
    assert verdict(again) == ("ok", None)
    assert again.json()["replayed"] is True
    assert {k: v for k, v in again.json().items() if k != "replayed"} == {
        k: v for k, v in first.json().items() if k != "replayed"}
    assert count(db, Checkin) == rows
    # A retried denial is the same denial; a retried "already checked in" still names the first entry.
    dup = scan(client, door, qr, nonce_="retry-0002")
    dup_again = scan(client, door, qr, nonce_="retry-0002")
    assert verdict(dup_again) == ("error", "already_checked_in") and dup_again.json()["replayed"] is True
    assert dup_again.json()["first_checkin"] == dup.json()["first_checkin"] is not None
    garbage = scan(client, door, "garbage", nonce_="retry-0003")
    assert verdict(scan(client, door, "garbage", nonce_="retry-0003")) == verdict(garbage) == ("error", "malformed")
    assert count(db, Checkin) == rows + 2

    # The same nonce with another payload is a client bug (or an attack): refused, nothing written.
    _other, other_qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    reused = scan(client, door, other_qr, nonce_="retry-0001")
    assert reused.status_code == 409 and reused.json()["code"] == "nonce_reused"
    assert count(db, Checkin) == rows + 2
    # Nonces are per event: another event's station may use the same one.
    other_event = make_door(client, db, make_event(db, tree.commune_a.id))
    assert verdict(scan(client, other_event, qr, nonce_="retry-0001")) == ("ok", None)


# --- manual check-in -------------------------------------------------------------------------------------------------

def test_manual_checkin_officer_only_with_reason_and_audited(
        client: TestClient, db: Session, tree: Tree, cipher: PiiCipher, door: Door) -> None:
    member = make_member(db, cipher, tree.branch_a)
    url = f"/v1/events/{door.event.id}/checkins"
    body = {"source": "manual", "client_nonce": nonce(), "member_id": member.id, "manual_reason": "quên thẻ ở nhà"}
    by_device = client.post(url, json=body, headers=door.headers)
    assert by_device.status_code == 403 and by_device.json()["code"] == "officer_only"
    by_viewer = client.post(url, json=body, headers=login(client, "t.viewer.a"))
    assert by_viewer.status_code == 403 and by_viewer.json()["code"] == "read_only"
    officer = login(client, "t.officer.commune")
    no_reason = client.post(url, json={**body, "manual_reason": "  "}, headers=officer)
    assert no_reason.status_code == 422
    no_member = client.post(url, json={k: v for k, v in body.items() if k != "member_id"}, headers=officer)
    assert no_member.status_code == 422
    assert count(db, Checkin) == 0

    accepted = client.post(url, json=body, headers=officer)
    assert verdict(accepted) == ("ok", None)
    assert accepted.json()["member"]["member_number"] == member.member_number
    row = db.get(Checkin, accepted.json()["checkin_id"])
    assert row is not None and row.source == "manual" and row.manual_reason == "quên thẻ ở nhà"
    assert row.officer_id == tree.officers["t.officer.commune"].id and row.card_id is None
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "checkin.manual"))
    assert entry is not None and entry.actor_id == tree.officers["t.officer.commune"].id
    assert entry.target_id == str(door.event.id) and entry.details == {"member_id": member.id}
    # Manual and scanned entries share the once-only rule; a member out of the officer's scope is "not found".
    again = client.post(url, json={**body, "client_nonce": nonce()}, headers=officer)
    assert verdict(again) == ("error", "already_checked_in")
    outsider = make_member(db, cipher, tree.branch_b)
    hidden = client.post(url, json={**body, "client_nonce": nonce(), "member_id": outsider.id}, headers=officer)
    assert hidden.status_code == 404
    assert count(db, AuditEntry, AuditEntry.action == "checkin.manual") == 1


# --- devices ---------------------------------------------------------------------------------------------------------

def test_device_tokens_are_bound_to_their_event_and_to_check_in(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher, door: Door) -> None:
    _card, qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    other = make_event(db, tree.commune_a.id)
    wrong = client.post(f"/v1/events/{other.id}/checkins", headers=door.headers,
                        json={"source": "qr_scanner", "client_nonce": nonce(), "payload": qr})
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_event"
    missing = client.post("/v1/events/999999/checkins", headers=door.headers,
                          json={"source": "qr_scanner", "client_nonce": nonce(), "payload": qr})
    assert missing.status_code == 403 and missing.json()["code"] == "wrong_event"
    for method, url in (("GET", "/v1/events"), ("GET", f"/v1/events/{door.event.id}"),
                        ("GET", f"/v1/events/{door.event.id}/stations"), ("GET", "/v1/members"),
                        ("POST", f"/v1/events/{door.event.id}/close")):
        response = client.request(method, url, headers=door.headers)
        assert response.status_code == 401, (method, url, response.text)
        assert response.json()["code"] == "invalid_token"
    assert count(db, Checkin) == 0

    revoked = client.post(f"/v1/events/{door.event.id}/stations/{door.station_id}/revoke",
                          headers=login(client, "t.officer.a"))
    assert revoked.status_code == 200, revoked.text
    refused = scan(client, door, qr)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
    forged = scan(client, Door(door.event, 0, {"Authorization": "Bearer cdv_not-a-real-token"}), qr)
    assert forged.status_code == 401
    assert count(db, Checkin) == 0


def test_unknown_event_for_officers(client: TestClient, tree: Tree) -> None:
    response = client.post("/v1/events/999999/checkins", headers=login(client, "t.officer.a"),
                           json={"source": "qr_scanner", "client_nonce": nonce(), "payload": "8401"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    anonymous = client.post("/v1/events/999999/checkins",
                            json={"source": "qr_scanner", "client_nonce": nonce(), "payload": "8401"})
    assert anonymous.status_code == 401


def test_event_out_of_officer_scope_is_not_found(client: TestClient, db: Session, tree: Tree) -> None:
    event = make_event(db, tree.prov_b.id)
    response = client.post(f"/v1/events/{event.id}/checkins", headers=login(client, "t.officer.a"),
                           json={"source": "qr_scanner", "client_nonce": nonce(), "payload": "8401"})
    assert response.status_code == 404
    assert count(db, Checkin) == 0


# --- bad input -------------------------------------------------------------------------------------------------------

def test_bad_input_is_refused_with_codes_and_writes_nothing(client: TestClient, db: Session, door: Door) -> None:
    url = f"/v1/events/{door.event.id}/checkins"
    audit_before = count(db, AuditEntry)
    huge = client.post(url, headers=door.headers, json={"source": "qr_scanner", "client_nonce": nonce(),
                                                        "payload": "8" * 1_000_000})
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    # 5 KB is more than any card (a QR text is ~420 digits) and more than the schema allows: 422, not a scan.
    five_kb = scan(client, door, "8401" + "1" * 5_000)
    assert five_kb.status_code == 422 and five_kb.json()["details"][0]["field"] == "payload"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"source": "barcode", "client_nonce": nonce(), "payload": "8401"}, 422, "validation_failed"),
        ({"source": "qr_scanner", "client_nonce": "short", "payload": "8401"}, 422, "validation_failed"),
        ({"source": "qr_scanner", "client_nonce": "bad nonce!", "payload": "8401"}, 422, "validation_failed"),
        ({"source": "qr_scanner", "client_nonce": nonce(), "payload": 8401}, 422, "validation_failed"),
        ({"source": "qr_scanner", "client_nonce": nonce(), "payload": "8401", "extra": 1}, 422, "validation_failed"),
        ({"source": "qr_scanner", "payload": "8401"}, 422, "validation_failed"),
    ]
    for body, status, code in cases:
        response = client.post(url, json=body, headers=door.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    not_json = client.post(url, content=b"{not json", headers={**door.headers, "Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["code"] == "malformed_json"
    assert count(db, Checkin) == 0
    assert count(db, AuditEntry) == audit_before

    # A long garbage scan below the schema's cap is a scan: one denied row, nothing else.
    long_garbage = scan(client, door, "8401" + "9" * 3_000)
    assert verdict(long_garbage) == ("error", "malformed")
    assert count(db, Checkin) == 1 and count(db, AuditEntry) == audit_before


def test_denied_scans_keep_reason_and_hash_never_the_payload(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher, door: Door) -> None:
    revoked_card, revoked_qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    cards.revoke_card(db, SYSTEM, revoked_card.card_id, reason="stolen", note=None)
    _ok, ok_qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    payloads = {revoked_qr: "revoked", "8401" + "7" * 100: "malformed", ok_qr: None}
    for payload in payloads:
        scan(client, door, payload)
    rows = db.scalars(select(Checkin).where(Checkin.event_id == door.event.id).order_by(Checkin.id)).all()
    assert [(r.result, r.reason) for r in rows] == [("error", "revoked"), ("error", "malformed"), ("ok", None)]
    for row, payload in zip(rows, payloads, strict=True):
        assert row.payload_hash == hashlib.sha256(payload.encode()).hexdigest()
        stored = " ".join(str(getattr(row, column.key)) for column in Checkin.__table__.columns)
        assert payload not in stored and payload[4:40] not in stored
    assert rows[0].card_id == revoked_card.card_id and rows[0].member_id == revoked_card.member_id
    assert rows[1].card_id is None and rows[1].member_id is None
