"""NFC writes handed to a station: an officer requests, the station's device lists and reports, both are audited;
scope, read-only accounts, other stations and officer tokens on the device routes are refused."""

from __future__ import annotations

import base64

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, NfcWriteRequest
from cardsvc.security import PiiCipher
from cardsvc.services import cards, stations
from tests.conftest import SYSTEM, Tree, login, make_member
from tests.server.test_checkins import Door, issue, make_door, make_event

pytestmark = pytest.mark.usefixtures("signing_keys")


def _request(client: TestClient, door: Door, card_id: str, headers: dict[str, str], *, lock: bool = False) -> Response:
    response: Response = client.post(f"/v1/events/{door.event.id}/stations/{door.station_id}/nfc-writes",
                                     json={"card_id": card_id, "lock": lock}, headers=headers)
    return response


def _actions(db: Session, card_id: str) -> list[tuple[str, str, str]]:
    return [(e.action, e.actor_type, e.actor_name) for e in db.scalars(
        select(AuditEntry).where(AuditEntry.target_id == card_id, AuditEntry.action.like("card.nfc%"))
        .order_by(AuditEntry.id))]


def test_request_list_write_and_report_is_audited(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                  cipher: PiiCipher) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id), "Bàn cấp thẻ")
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    officer = login(client, "t.officer.a")

    created = client.post(f"/v1/events/{door.event.id}/stations/{door.station_id}/nfc-writes",
                          json={"card_id": card.card_id.upper(), "lock": True}, headers=officer)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["card_id"], body["lock"], body["station_id"]) == (
        "pending", card.card_id, True, door.station_id)
    assert body["requested_by_id"] == tree.officers["t.officer.a"].id

    pending = client.get("/v1/devices/nfc-writes", headers=door.headers)
    assert pending.status_code == 200
    (task,) = pending.json()
    assert task["id"] == body["id"] and task["card_id"] == card.card_id and task["lock"] is True
    assert base64.b64decode(task["credential_base64"]) == card.credential

    done = client.post(f"/v1/devices/nfc-writes/{task['id']}/result", headers=door.headers,
                       json={"ok": True, "error": None, "uid": "04A1B2C3D4E5F6"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["tag_uid"] == "04a1b2c3d4e5f6"
    assert done.json()["completed_at"] is not None
    assert client.get("/v1/devices/nfc-writes", headers=door.headers).json() == []
    again = client.post(f"/v1/devices/nfc-writes/{task['id']}/result", headers=door.headers, json={"ok": True})
    assert again.status_code == 409 and again.json()["code"] == "nfc_write_completed"

    listed = client.get(f"/v1/events/{door.event.id}/stations/{door.station_id}/nfc-writes", headers=officer)
    assert [(r["id"], r["status"]) for r in listed.json()] == [(body["id"], "done")]
    assert _actions(db, card.card_id) == [("card.nfc_write_requested", "officer", "t.officer.a"),
                                          ("card.nfc_written", "station", "Bàn cấp thẻ")]
    # The station's audit entry is in the card's chapter: officers of that scope see it.
    audit = client.get("/v1/audit?action=card.nfc_written", headers=officer)
    assert audit.status_code == 200


def test_a_failed_write_is_recorded_and_audited(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                cipher: PiiCipher) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id))
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    request_id = _request(client, door, card.card_id, login(client, "t.admin")).json()["id"]
    failed = client.post(f"/v1/devices/nfc-writes/{request_id}/result", headers=door.headers,
                         json={"ok": False, "error": "the tag is read-only (static lock bits are set)"})
    assert failed.status_code == 200
    row = db.get(NfcWriteRequest, request_id)
    assert row is not None and row.status == "failed" and row.error is not None and "read-only" in row.error
    assert [a for a, _t, _n in _actions(db, card.card_id)] == ["card.nfc_write_requested", "card.nfc_write_failed"]


def test_scope_roles_and_state(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id))
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    outside_card, _qr = issue(app, db, make_member(db, cipher, tree.branch_b))
    officer = login(client, "t.officer.a")

    assert _request(client, door, card.card_id, login(client, "t.officer.b")).status_code == 404
    assert _request(client, door, card.card_id, login(client, "t.viewer.a")).status_code == 403
    assert _request(client, door, outside_card.card_id, officer).status_code == 404
    other_event_door = make_door(client, db, make_event(db, tree.commune_a.id), "Cửa khác")
    wrong_station = client.post(f"/v1/events/{door.event.id}/stations/{other_event_door.station_id}/nfc-writes",
                                json={"card_id": card.card_id}, headers=officer)
    assert wrong_station.status_code == 404

    cards.suspend_card(db, SYSTEM, card.card_id, note=None)
    suspended = _request(client, door, card.card_id, officer)
    assert suspended.status_code == 409 and suspended.json()["code"] == "card_not_active"
    cards.reinstate_card(db, SYSTEM, card.card_id, note=None)
    pending = stations.register_station(db, SYSTEM, door.event.id, "Chưa cài").station
    not_set_up = client.post(f"/v1/events/{door.event.id}/stations/{pending.id}/nfc-writes",
                             json={"card_id": card.card_id}, headers=officer)
    assert not_set_up.status_code == 409 and not_set_up.json()["code"] == "station_not_active"
    assert _request(client, door, card.card_id, officer).status_code == 201


def test_only_the_stations_own_device_sees_and_reports_its_writes(client: TestClient, app: FastAPI, db: Session,
                                                                  tree: Tree, cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    door, neighbour = make_door(client, db, event, "Cửa 1"), make_door(client, db, event, "Cửa 2")
    card, _qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    officer = login(client, "t.officer.a")
    request_id = _request(client, door, card.card_id, officer).json()["id"]

    assert client.get("/v1/devices/nfc-writes", headers=neighbour.headers).json() == []
    stolen = client.post(f"/v1/devices/nfc-writes/{request_id}/result", headers=neighbour.headers, json={"ok": True})
    assert stolen.status_code == 404
    for headers in (officer, {}):
        assert client.get("/v1/devices/nfc-writes", headers=headers).status_code == 401
        assert client.post(f"/v1/devices/nfc-writes/{request_id}/result", headers=headers,
                           json={"ok": True}).status_code == 401
    bad = client.post(f"/v1/devices/nfc-writes/{request_id}/result", headers=door.headers,
                      json={"ok": True, "uid": "not hex"})
    assert bad.status_code == 422

    # A card revoked after the request is not handed out; a revoked station cannot poll at all.
    cards.revoke_card(db, SYSTEM, card.card_id, reason="lost", note=None)
    assert client.get("/v1/devices/nfc-writes", headers=door.headers).json() == []
    stations.revoke_station(db, SYSTEM, event.id, door.station_id)
    assert client.get("/v1/devices/nfc-writes", headers=door.headers).status_code == 401
