"""An event's scope (issue 13, item 1): an officer's ``all`` event spans her own scope, never the country, and no
roster, report or check-in answer names a member outside the event's scope or the reader's.

The server check-in, the bundle roster a door station decides with offline, and the live counts must agree on who is
eligible; events written before the scope was recorded get a safe one from the migration.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from cardsvc.db.migrate import alembic_config
from cardsvc.db.models import Checkin, Member
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher
from cardsvc.services import cards
from cardsvc.services.printing import credential_of
from station.loop import decide_offline
from tests.conftest import SYSTEM, Tree, login, make_member
from verification.event_bundle import EventBundle, verify_event_bundle
from verification.trust import TrustAnchor

pytestmark = pytest.mark.usefixtures("signing_keys")
_nonces = itertools.count(1)


def _nonce() -> str:
    return f"scope-{next(_nonces):08d}"


def _create_event(client: TestClient, headers: dict[str, str], chapter_id: int, eligibility: str) -> int:
    now = datetime.now(UTC)
    response = client.post("/v1/events", headers=headers, json={
        "chapter_id": chapter_id, "title": "Hội nghị", "eligibility": eligibility,
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=3)).isoformat()})
    assert response.status_code == 201, response.text
    event_id: int = response.json()["id"]
    return event_id


def _qr(app: FastAPI, db: Session, member: Member) -> str:
    card = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    return credential_of(card).qr_text


def _device(client: TestClient, headers: dict[str, str], event_id: int) -> dict[str, str]:
    registered = client.post(f"/v1/events/{event_id}/stations", json={"name": "Cổng"}, headers=headers)
    assert registered.status_code == 201, registered.text
    token = client.post("/v1/devices/provision", json={"code": registered.json()["provisioning_code"]})
    return {"Authorization": f"Bearer {token.json()['device_token']}"}


def _bundle(client: TestClient, headers: dict[str, str], event_id: int) -> EventBundle:
    response = client.get(f"/v1/events/{event_id}/bundle", headers=headers)
    assert response.status_code == 200, response.text
    anchor = TrustAnchor.from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json())
    return verify_event_bundle(response.text, anchor, datetime.now(UTC))


def _manual(client: TestClient, headers: dict[str, str], event_id: int, member_id: int) -> Any:
    return client.post(f"/v1/events/{event_id}/checkins", headers=headers, json={
        "source": "manual", "client_nonce": _nonce(), "member_id": member_id, "manual_reason": "quên thẻ"})


def test_an_officers_all_event_holds_her_scope_not_the_country(client: TestClient, app: FastAPI, db: Session,
                                                               tree: Tree, cipher: PiiCipher) -> None:
    officer = login(client, "t.officer.a")
    hanoi = [make_member(db, cipher, chapter) for chapter in (tree.branch_a, tree.commune_a2, tree.prov_a)]
    saigon = make_member(db, cipher, tree.branch_b)
    qr = {member.id: _qr(app, db, member) for member in [*hanoi, saigon]}
    event_id = _create_event(client, officer, tree.commune_a.id, "all")

    bundle = _bundle(client, officer, event_id)
    assert {entry.member_number for entry in bundle.roster} == {m.member_number for m in hanoi}
    # The live counts and the server's own check-in agree with the roster a station decides with offline.
    stats = client.get(f"/v1/events/{event_id}/stats", headers=officer).json()
    assert stats["eligible"] == len(bundle.roster) == 3
    device = _device(client, officer, event_id)
    for member in hanoi:
        answer = client.post(f"/v1/events/{event_id}/checkins", headers=device,
                             json={"source": "qr_scanner", "client_nonce": _nonce(), "payload": qr[member.id]})
        assert answer.json()["result"] == "ok", answer.text
    offline = decide_offline(qr[saigon.id], _bundle(client, device, event_id), [], datetime.now(UTC))
    assert (offline.result, offline.reason) == ("error", "not_eligible")


def test_a_station_scan_of_a_card_outside_the_event_scope_names_nobody(client: TestClient, app: FastAPI,
                                                                       db: Session, tree: Tree,
                                                                       cipher: PiiCipher) -> None:
    officer = login(client, "t.officer.a")
    event_id = _create_event(client, officer, tree.commune_a.id, "all")
    device = _device(client, officer, event_id)
    saigon = make_member(db, cipher, tree.branch_b, full_name="Phạm Thị Mai")
    nonce = _nonce()
    body = {"source": "qr_scanner", "client_nonce": nonce, "payload": _qr(app, db, saigon)}
    for attempt in ("first", "replay"):
        answer = client.post(f"/v1/events/{event_id}/checkins", headers=device, json=body)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["result"], answer.json()["reason"]) == ("error", "not_eligible"), attempt
        assert answer.json()["member"] is None and "Phạm" not in answer.text
    row = db.scalar(select(Checkin).where(Checkin.client_nonce == nonce))
    assert row is not None and row.member_id is None
    denied = client.get(f"/v1/events/{event_id}/denied", headers=officer).json()
    assert [scan["member_number"] for scan in denied] == [None]


def test_manual_checkin_of_a_member_out_of_scope_is_404_like_a_missing_one(client: TestClient, db: Session,
                                                                          tree: Tree, cipher: PiiCipher) -> None:
    officer = login(client, "t.officer.a")
    event_id = _create_event(client, officer, tree.commune_a.id, "all")
    saigon = make_member(db, cipher, tree.branch_b, full_name="Phạm Thị Mai")
    missing = db.scalar(select(Member.id).order_by(Member.id.desc()).limit(1))
    assert missing is not None
    out_of_scope = _manual(client, officer, event_id, saigon.id)
    absent = _manual(client, officer, event_id, missing + 1000)
    assert out_of_scope.status_code == absent.status_code == 404
    assert out_of_scope.json() == absent.json()
    assert db.scalar(select(Checkin.id).where(Checkin.event_id == event_id)) is None
    # A member she sees is checked in by hand as before.
    hanoi = make_member(db, cipher, tree.commune_a2)
    assert _manual(client, officer, event_id, hanoi.id).json()["result"] == "ok"


def test_an_event_is_seen_only_by_officers_whose_scope_holds_its_scope(client: TestClient, db: Session, tree: Tree,
                                                                       cipher: PiiCipher) -> None:
    """The commune officer sees events of her commune, but not a province officer's ``all`` event held there: its
    roster spans the province."""
    province_event = _create_event(client, login(client, "t.officer.a"), tree.commune_a.id, "all")
    commune_officer = login(client, "t.officer.commune")
    own_event = _create_event(client, commune_officer, tree.commune_a.id, "all")
    for path in ("", "/bundle", "/stats", "/attendance"):
        assert client.get(f"/v1/events/{province_event}{path}", headers=commune_officer).status_code == 404, path
    listed = client.get("/v1/events", headers=commune_officer).json()
    assert [event["id"] for event in listed] == [own_event]
    # An administrator's ``all`` event spans the whole tree: only officers who see the whole tree see it.
    national = _create_event(client, login(client, "t.admin"), tree.commune_a.id, "all")
    assert client.get(f"/v1/events/{national}", headers=login(client, "t.officer.a")).status_code == 404
    make_member(db, cipher, tree.branch_b)
    assert client.get(f"/v1/events/{national}/stats", headers=login(client, "t.admin")).json()["eligible"] >= 1


def test_rows_recorded_before_the_scope_name_nobody_outside_it(client: TestClient, db: Session, tree: Tree,
                                                              cipher: PiiCipher) -> None:
    """An ``all`` event that admitted (or refused) members from anywhere before migration 0013 narrowed its scope:
    its reports and bundle keep the scans but name only members inside the scope."""
    officer = login(client, "t.officer.a")
    event_id = _create_event(client, officer, tree.commune_a.id, "all")
    hanoi, saigon = make_member(db, cipher, tree.branch_a), make_member(db, cipher, tree.branch_b)
    now = datetime.now(UTC)
    rows = [(hanoi, "ok", None, 1, False), (saigon, "ok", None, 1, False), (saigon, "error", "already_checked_in",
                                                                            0, True)]
    db.add_all(Checkin(event_id=event_id, member_id=member.id, result=result, reason=reason, seq=seq,
                       source="qr_scanner", client_nonce=_nonce(), payload_hash="0" * 64, received_at=now,
                       offline=offline, local_result="ok" if offline else None)
               for member, result, reason, seq, offline in rows)
    db.flush()
    attendance = client.get(f"/v1/events/{event_id}/attendance", headers=officer).json()
    assert [row["member_number"] for row in attendance] == [hanoi.member_number]
    denied = client.get(f"/v1/events/{event_id}/denied", headers=officer).json()
    conflicts = client.get(f"/v1/events/{event_id}/conflicts", headers=officer).json()
    assert [row["member_number"] for row in denied] == [None]
    assert [(row["member_id"], row["member_number"], row["full_name"]) for row in conflicts] == [(None, None, None)]
    stats = client.get(f"/v1/events/{event_id}/stats", headers=officer).json()
    assert stats["checked_in"] == 1 and tree.branch_b.code not in {c["code"] for c in stats["chapters"]}
    bundle = _bundle(client, officer, event_id)
    assert [entry.member_number for entry in bundle.checkins] == [hanoi.member_number]


def test_invitees_must_lie_in_the_events_scope(client: TestClient, db: Session, tree: Tree,
                                               cipher: PiiCipher) -> None:
    admin = login(client, "t.admin")
    event_id = _create_event(client, admin, tree.commune_a.id, "invite")
    guest, elsewhere = make_member(db, cipher, tree.branch_a), make_member(db, cipher, tree.commune_a2)
    refused = client.post(f"/v1/events/{event_id}/invites", headers=admin,
                          json={"member_ids": [guest.id, elsewhere.id]})
    assert refused.status_code == 404, refused.text
    assert str(elsewhere.id) in refused.json()["message"] and str(guest.id) not in refused.json()["message"]
    invited = client.post(f"/v1/events/{event_id}/invites", headers=admin, json={"member_ids": [guest.id]})
    assert invited.json() == {"invited": 1}


@contextmanager
def _empty_database(tmp_path: Path, connection: Connection) -> Iterator[Connection]:
    """A connection to a database without tables: a file of its own on SQLite, a schema of its own (rolled back with
    the test's transaction) on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("CREATE SCHEMA scope_migration"))
        connection.execute(text("SET LOCAL search_path TO scope_migration"))
        yield connection
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        with engine.begin() as own:
            yield own
    finally:
        engine.dispose()


def test_the_migration_gives_existing_events_a_safe_scope(tmp_path: Path, connection: Connection) -> None:
    """Events written before migration 0013: ``subtree`` and ``invite`` events get their chapter, an officer's
    ``all`` event her chapter, and only an ``all`` event of a whole-tree administrator or of the command line keeps
    the whole tree."""
    now = {"now": datetime(2026, 12, 1)}
    with _empty_database(tmp_path, connection) as database:
        command.upgrade(alembic_config(connection=database), "0007")
        database.execute(text(
            "INSERT INTO chapters (id, code, name, level, parent_id, path, depth, status, created_at, updated_at) "
            "VALUES (1, 'C', 'Trung ương', 'central', NULL, '/1/', 0, 'active', :now, :now), "
            "(2, 'P', 'Hà Nội', 'province', 1, '/1/2/', 1, 'active', :now, :now), "
            "(3, 'X', 'Ba Đình', 'commune', 2, '/1/2/3/', 2, 'active', :now, :now)"), now)
        database.execute(text(
            "INSERT INTO officers (id, username, full_name, password_hash, role, chapter_id, permissions, is_active, "
            "failed_logins, created_at) VALUES (1, 'admin', '', 'x', 'admin', NULL, '', true, 0, :now), "
            "(2, 'hanoi', '', 'x', 'officer', 2, '', true, 0, :now)"), now)
        database.execute(text(
            "INSERT INTO events (id, chapter_id, title, venue, starts_at, ends_at, checkin_opens_at, "
            "checkin_closes_at, eligibility, mode, allow_reentry, status, created_by_id, created_at) VALUES "
            "(1, 3, 'a', '', :now, :now, :now, :now, 'subtree', 'entry', false, 'open', 2, :now), "
            "(2, 3, 'b', '', :now, :now, :now, :now, 'invite', 'entry', false, 'open', 1, :now), "
            "(3, 3, 'c', '', :now, :now, :now, :now, 'all', 'entry', false, 'open', 2, :now), "
            "(4, 3, 'd', '', :now, :now, :now, :now, 'all', 'entry', false, 'open', 1, :now), "
            "(5, 3, 'e', '', :now, :now, :now, :now, 'all', 'entry', false, 'open', NULL, :now)"), now)
        command.upgrade(alembic_config(connection=database), "head")
        scopes = {row[0]: row[1] for row in database.execute(text("SELECT id, scope_chapter_id FROM events"))}
    assert scopes == {1: 3, 2: 3, 3: 2, 4: None, 5: None}
